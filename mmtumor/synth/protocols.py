"""Vendor protocols for phantom DICOM studies: how Siemens, GE and Philips name and time T1, T1c, T2, FLAIR and
the distractor series (descriptions, sequence names, TE/TR/TI, contrast agents). ``synth.dicom`` writes with them;
the detector is also checked on descriptions this table never holds (tests/test_detect.py)."""

from __future__ import annotations

from dataclasses import dataclass

VENDORS = ("siemens", "ge", "philips")
ORIENTATIONS = ("axial", "sagittal", "coronal", "oblique")
BROKEN_KINDS = ("missing_slice", "duplicate_slice", "mixed_orientation", "shared_folder")
DISTRACTOR_KINDS = ("LOC", "DWI", "ADC", "MPR")

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"

_MANUFACTURER = {
    "siemens": ("SIEMENS", ("Prisma", "Skyra", "Avanto_fit")),
    "ge": ("GE MEDICAL SYSTEMS", ("SIGNA Premier", "DISCOVERY MR750", "Optima MR450w")),
    "philips": ("Philips Medical Systems", ("Ingenia", "Achieva dStream", "Ingenia Elition X")),
}


@dataclass(frozen=True)
class Protocol:
    """One vendor protocol: names and sequence parameters (ranges are sampled per series)."""

    description: str
    protocol: str
    sequence_name: str
    scanning_sequence: str
    sequence_variant: str
    acq_type: str  # "2D" | "3D"
    tr: tuple[float, float]
    te: tuple[float, float]
    ti: tuple[float, float] | None
    flip: tuple[float, float]
    plane: str = "axial"  # the plane this protocol is usually acquired in
    thickness: float = 1.0
    image_type: str = "ORIGINAL\\PRIMARY\\M\\ND"


P = Protocol
#: vendor -> kind -> protocol variants. Kinds: T1, T1c, T2, FLAIR and distractors LOC, DWI, ADC, MPR.
PROTOCOLS: dict[str, dict[str, list[Protocol]]] = {
    "siemens": {
        "T1": [
            P("t1_mprage_sag_p2_iso", "t1_mprage_sag_p2_iso", "*tfl3d1_16ns", "GR\\IR", "SK\\SP\\MP", "3D",
              (1900, 2300), (2.2, 3.0), (900, 1100), (8, 9), "sagittal", 1.0),
            P("t1_se_tra", "t1_se_tra", "*se2d1", "SE", "SP\\OSP", "2D", (450, 650), (8, 12), None, (70, 90), "axial", 5.0),
            P("T1 MPRAGE PRE", "T1_MPRAGE_PRE", "*tfl3d1", "GR\\IR", "SK\\SP\\MP", "3D",
              (2000, 2300), (2.3, 3.2), (900, 1000), (8, 9), "sagittal", 1.0),
            P("t1_fl2d_tra", "t1_fl2d_tra", "*fl2d1", "GR", "SP\\OSP", "2D", (230, 300), (2.4, 2.8), None, (65, 75), "axial", 5.0),
        ],
        "T1c": [
            P("t1_mprage_sag_p2_iso_post", "t1_mprage_sag_p2_iso_post", "*tfl3d1_16ns", "GR\\IR", "SK\\SP\\MP", "3D",
              (1900, 2300), (2.2, 3.0), (900, 1100), (8, 9), "sagittal", 1.0),
            P("T1 MPRAGE +C", "T1_MPRAGE_KM", "*tfl3d1", "GR\\IR", "SK\\SP\\MP", "3D",
              (2000, 2300), (2.3, 3.2), (900, 1000), (8, 9), "sagittal", 1.0),
            P("t1_se_tra_KM", "t1_se_tra_KM", "*se2d1", "SE", "SP\\OSP", "2D", (450, 650), (8, 12), None, (70, 90), "axial", 5.0),
            P("t1_mprage_tra_GD", "t1_mprage_tra_GD", "*tfl3d1_16ns", "GR\\IR", "SK\\SP\\MP", "3D",
              (1900, 2300), (2.2, 3.0), (900, 1100), (8, 9), "axial", 1.0),
        ],
        "T2": [
            P("t2_tse_tra", "t2_tse_tra", "*tse2d1_15", "SE", "SK\\SP\\OSP", "2D", (4000, 6500), (85, 110), None, (120, 150), "axial", 5.0),
            P("t2_tse_tra_p2_512", "t2_tse_tra_p2_512", "*tse2d1_17", "SE", "SK\\SP\\OSP", "2D", (5000, 7000), (90, 105), None, (150, 150), "axial", 4.0),
            P("t2_spc_sag_p2_iso", "t2_spc_sag_p2_iso", "*spc_314ns", "SE", "SK\\SP\\OSP", "3D", (3200, 3200), (400, 420), None, (120, 120), "sagittal", 1.0),
            P("T2 TSE AX", "T2_TSE_AX", "*tse2d1_13", "SE", "SK\\SP\\OSP", "2D", (4500, 6000), (90, 100), None, (140, 150), "oblique", 4.0),
        ],
        "FLAIR": [
            P("t2_tirm_tra_dark-fluid", "t2_tirm_tra_dark-fluid", "*tir2d1_15", "SE\\IR", "SK\\SP\\MP\\OSP", "2D",
              (8000, 9000), (80, 95), (2370, 2500), (150, 150), "axial", 5.0),
            P("t2_spc_da-fl_sag_p2_iso", "t2_spc_da-fl_sag_p2_iso", "*spcir_278ns", "SE\\IR", "SK\\SP\\MP\\OSP", "3D",
              (5000, 5000), (380, 400), (1800, 1800), (120, 120), "sagittal", 1.0),
            P("FLAIR AX", "t2_flair_tra", "*tir2d1_13", "SE\\IR", "SK\\SP\\MP\\OSP", "2D",
              (9000, 9500), (85, 90), (2500, 2500), (150, 150), "axial", 4.0),
            P("t2_tirm_cor_dark-fluid", "t2_tirm_cor_dark-fluid", "*tir2d1_15", "SE\\IR", "SK\\SP\\MP\\OSP", "2D",
              (8000, 9000), (80, 95), (2370, 2500), (150, 150), "coronal", 4.0),
        ],
        "LOC": [P("localizer", "localizer", "*fl2d1", "GR", "SP", "2D", (8.6, 8.6), (4.0, 4.0), None, (20, 20)),
                P("AAHead_Scout", "AAHead_Scout_64ch", "*fl3d1_ns", "GR", "SP", "3D", (3.2, 3.2), (1.4, 1.4), None, (8, 8))],
        "DWI": [P("ep2d_diff_3scan_trace_p2", "ep2d_diff_3scan_trace_p2", "*ep_b1000t", "EP", "SK\\SP", "2D",
                  (4000, 6500), (85, 95), None, (90, 90), "axial", 5.0, "ORIGINAL\\PRIMARY\\DIFFUSION\\NONE\\ND\\NORM")],
        "ADC": [P("ep2d_diff_3scan_trace_p2_ADC", "ep2d_diff_3scan_trace_p2", "*ep_b0_1000", "EP", "SK\\SP", "2D",
                  (4000, 6500), (85, 95), None, (90, 90), "axial", 5.0, "DERIVED\\PRIMARY\\DIFFUSION\\ADC\\ND\\NORM")],
        "MPR": [P("t1_mprage_sag_p2_iso_post_MPR_tra", "t1_mprage_sag_p2_iso_post", "*tfl3d1_16ns", "GR\\IR", "SK\\SP\\MP", "3D",
                  (1900, 2300), (2.2, 3.0), (900, 1100), (8, 9), "axial", 3.0, "DERIVED\\SECONDARY\\MPR\\CSA MPR\\ND\\NORM")],
    },
    "ge": {
        "T1": [
            P("Sag 3D BRAVO", "Sag 3D BRAVO", "efgre3d", "GR", "SS\\SK", "3D", (7.5, 8.5), (3.0, 3.3), (450, 450), (12, 12), "sagittal", 1.0),
            P("AX T1 SE", "AX T1 SE", "fse", "SE", "SK\\OSP", "2D", (450, 600), (9, 12), None, (90, 90), "axial", 5.0),
            P("Ax T1 FLAIR", "Ax T1 FLAIR", "fsirs", "SE\\IR", "SK\\OSP\\MP", "2D", (1800, 2200), (20, 25), (720, 780), (90, 90), "axial", 5.0),
            P("SAG 3D FSPGR PRE", "SAG 3D FSPGR PRE", "efgre3d", "GR", "SS\\SK", "3D", (7.0, 8.0), (2.8, 3.2), None, (12, 15), "sagittal", 1.2),
        ],
        "T1c": [
            P("AX T1 POST GAD", "AX T1 POST GAD", "fse", "SE", "SK\\OSP", "2D", (450, 600), (9, 12), None, (90, 90), "axial", 5.0),
            P("Sag 3D BRAVO +C", "Sag 3D BRAVO +C", "efgre3d", "GR", "SS\\SK", "3D", (7.5, 8.5), (3.0, 3.3), (450, 450), (12, 12), "sagittal", 1.0),
            P("+C Ax T1 FLAIR", "+C Ax T1 FLAIR", "fsirs", "SE\\IR", "SK\\OSP\\MP", "2D", (1800, 2200), (20, 25), (720, 780), (90, 90), "axial", 5.0),
            P("COR T1 C+", "COR T1 C+", "fse", "SE", "SK\\OSP", "2D", (450, 600), (9, 12), None, (90, 90), "coronal", 4.0),
        ],
        "T2": [
            P("Ax T2 FRFSE", "Ax T2 FRFSE", "frfse", "SE", "SK\\OSP", "2D", (4500, 6000), (95, 110), None, (111, 125), "axial", 5.0),
            P("AX T2 PROPELLER", "AX T2 PROPELLER", "fse", "SE", "SK\\OSP", "2D", (5000, 7000), (100, 120), None, (142, 142), "axial", 4.0),
            P("Sag CUBE T2", "Sag CUBE T2", "fse3d", "SE", "SK\\OSP", "3D", (2500, 3000), (80, 110), None, (90, 90), "sagittal", 1.2),
            P("OBL T2 FSE", "OBL T2 FSE", "fse", "SE", "SK\\OSP", "2D", (4000, 5500), (90, 105), None, (125, 125), "oblique", 4.0),
        ],
        "FLAIR": [
            P("Ax T2 FLAIR", "Ax T2 FLAIR", "fsirs", "SE\\IR", "SK\\OSP\\MP", "2D", (8500, 10000), (110, 130), (2200, 2400), (90, 90), "axial", 5.0),
            P("Sag CUBE FLAIR", "Sag CUBE FLAIR", "fse3dir", "SE\\IR", "SK\\OSP\\MP", "3D", (6000, 6500), (110, 140), (1800, 1900), (90, 90), "sagittal", 1.2),
            P("AX FLAIR", "AX FLAIR", "fsirs", "SE\\IR", "SK\\OSP\\MP", "2D", (9000, 11000), (120, 145), (2400, 2600), (90, 90), "axial", 4.0),
            P("COR T2 FLAIR", "COR T2 FLAIR", "fsirs", "SE\\IR", "SK\\OSP\\MP", "2D", (8500, 10000), (110, 130), (2200, 2400), (90, 90), "coronal", 4.0),
        ],
        "LOC": [P("3-Plane Loc", "3-Plane Loc", "fgre", "GR", "SS", "2D", (5.0, 5.5), (1.5, 1.6), None, (30, 30))],
        "DWI": [P("Ax DWI 1000b", "Ax DWI 1000b", "epi", "EP", "SK\\SS", "2D", (6000, 8000), (70, 90), None, (90, 90), "axial", 5.0,
                  "ORIGINAL\\PRIMARY\\OTHER")],
        "ADC": [P("ADC (10^-6 mm²/s):Ax DWI 1000b", "Ax DWI 1000b", "epi", "EP", "SK\\SS", "2D", (6000, 8000), (70, 90), None, (90, 90),
                  "axial", 5.0, "DERIVED\\PRIMARY\\ADC")],
        "MPR": [P("Sag 3D BRAVO +C MPR AX", "Sag 3D BRAVO +C", "efgre3d", "GR", "SS\\SK", "3D", (7.5, 8.5), (3.0, 3.3), (450, 450), (12, 12),
                  "axial", 3.0, "DERIVED\\SECONDARY\\REFORMATTED\\AVERAGE")],
    },
    "philips": {
        "T1": [
            P("T1W_3D_TFE", "T1W_3D_TFE", "T1TFE", "GR", "MP\\SK", "3D", (8.0, 8.5), (3.6, 3.9), None, (8, 8), "sagittal", 1.0),
            P("T1W_SE", "T1W_SE", "SE", "SE", "SK", "2D", (500, 650), (10, 15), None, (90, 90), "axial", 5.0),
            P("sT1W_3D_TFE pre", "sT1W_3D_TFE", "T1TFE", "GR", "MP\\SK", "3D", (8.0, 8.5), (3.6, 3.9), None, (8, 8), "axial", 1.0),
            P("T1W_FFE", "T1W_FFE", "FFE", "GR", "SK", "2D", (250, 350), (4.0, 4.6), None, (70, 80), "axial", 5.0),
        ],
        "T1c": [
            P("T1W_3D_TFE +C", "T1W_3D_TFE +C", "T1TFE", "GR", "MP\\SK", "3D", (8.0, 8.5), (3.6, 3.9), None, (8, 8), "sagittal", 1.0),
            P("T1W_SE_GD", "T1W_SE_GD", "SE", "SE", "SK", "2D", (500, 650), (10, 15), None, (90, 90), "axial", 5.0),
            P("sT1W_3D_TFE_post_gado", "sT1W_3D_TFE", "T1TFE", "GR", "MP\\SK", "3D", (8.0, 8.5), (3.6, 3.9), None, (8, 8), "axial", 1.0),
            P("T1W_SE_COR_CONTRAST", "T1W_SE_COR", "SE", "SE", "SK", "2D", (500, 650), (10, 15), None, (90, 90), "coronal", 4.0),
        ],
        "T2": [
            P("T2W_TSE", "T2W_TSE", "TSE", "SE", "SK", "2D", (3000, 4500), (80, 100), None, (90, 90), "axial", 5.0),
            P("T2W_TSE_TRA", "T2W_TSE_TRA", "TSE", "SE", "SK", "2D", (3500, 5000), (90, 110), None, (90, 90), "oblique", 4.0),
            P("3D_T2W_VIEW", "3D_T2W_VIEW", "TSE", "SE", "SK", "3D", (2500, 2500), (250, 280), None, (90, 90), "sagittal", 1.0),
            P("sT2W_TSE_COR", "sT2W_TSE_COR", "TSE", "SE", "SK", "2D", (3000, 4500), (80, 100), None, (90, 90), "coronal", 4.0),
        ],
        "FLAIR": [
            P("T2W_FLAIR", "T2W_FLAIR", "IR", "IR", "SK", "2D", (10000, 11000), (120, 140), (2700, 2800), (90, 90), "axial", 5.0),
            P("3D_Brain_VIEW_FLAIR", "3D_Brain_VIEW_FLAIR", "IR", "SE\\IR", "SK\\MP", "3D", (4800, 4800), (280, 340), (1650, 1650), (40, 90),
              "sagittal", 1.1),
            P("FLAIR_longTR", "FLAIR_longTR", "IR", "IR", "SK", "2D", (11000, 12000), (125, 140), (2800, 2850), (90, 90), "axial", 4.0),
            P("sFLAIR_TRA", "sFLAIR_TRA", "IR", "IR", "SK", "2D", (10000, 11000), (120, 140), (2700, 2800), (90, 90), "oblique", 4.0),
        ],
        "LOC": [P("Survey", "Survey", "FFE", "GR", "SK", "2D", (10, 11), (4.6, 4.6), None, (15, 15))],
        "DWI": [P("DWI_SENSE", "DWI_SENSE", "EPI", "EP\\SE", "SK", "2D", (3000, 4500), (70, 90), None, (90, 90), "axial", 5.0,
                  "ORIGINAL\\PRIMARY\\M_SE\\M\\SE")],
        "ADC": [P("dADC_DWI_SENSE", "DWI_SENSE", "EPI", "EP\\SE", "SK", "2D", (3000, 4500), (70, 90), None, (90, 90), "axial", 5.0,
                  "DERIVED\\PRIMARY\\DIFFUSION\\ADC")],
        "MPR": [P("T1W_3D_TFE +C MPR tra", "T1W_3D_TFE +C", "T1TFE", "GR", "MP\\SK", "3D", (8.0, 8.5), (3.6, 3.9), None, (8, 8),
                  "axial", 3.0, "DERIVED\\SECONDARY\\MPR")],
    },
}

_CONTRAST_AGENTS = ("Gadovist", "DOTAREM", "MultiHance", "Gadavist 1.0 mmol/ml", "Clariscan", "GADOLINIUM")
