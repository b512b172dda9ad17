"""Published numbers, shown as their own rows "quoted from paper" (PSNR, dB, as published).

Keys are the benchmark's condition names: ``paper15/25/50`` for the paper protocol at σ 15 / 25
/ 50, ``real`` for a set of real noisy photos.
"""
from __future__ import annotations

QUOTED: dict[str, list[dict]] = {
    "CBSD68": [
        {"method": "CDnCNN-B", "source": "Zhang et al., IEEE TIP 2017 (DnCNN)",
         "psnr": {"paper15": 33.89, "paper25": 31.23, "paper50": 27.92}},
        {"method": "FFDNet", "source": "Zhang et al., IEEE TIP 2018 (FFDNet)",
         "psnr": {"paper15": 33.87, "paper25": 31.21, "paper50": 27.96}},
    ],
    "Kodak24": [
        {"method": "FFDNet", "source": "Zhang et al., IEEE TIP 2018 (FFDNet), 500×500 centre crops",
         "psnr": {"paper15": 34.63, "paper25": 32.13, "paper50": 28.98}},
    ],
    "BSD68": [
        {"method": "DnCNN-B (grey, blind)", "source": "Zhang et al., IEEE TIP 2017 (DnCNN), Table II",
         "psnr": {"paper15": 31.61, "paper25": 29.16, "paper50": 26.23}},
        {"method": "DnCNN-S (grey, one model per σ)", "source": "Zhang et al., IEEE TIP 2017 (DnCNN), Table II",
         "psnr": {"paper15": 31.73, "paper25": 29.23, "paper50": 26.23}},
    ],
    "PolyU": [
        {"method": "PD-Denoising (trained on synthetic noise only)",
         "source": "Zhou et al., AAAI 2020 (pixel-shuffle down-sampling)", "psnr": {"real": 37.04}},
    ],
    "CC15": [
        {"method": "PD-Denoising (trained on synthetic noise only)",
         "source": "Zhou et al., AAAI 2020 (pixel-shuffle down-sampling), CC set", "psnr": {"real": 35.85}},
    ],
}
