"""License normalisation: source strings -> SPDX ids (or LicenseRef-*) and a policy class."""

from __future__ import annotations

# Lower-cased source string -> (SPDX id or LicenseRef, policy class). Classes are deliberately conservative:
# custom licenses whose commercial terms we have not verified are "unknown", and `--license commercial` excludes them.
_TABLE: dict[str, tuple[str, str]] = {
    "apache-2.0": ("Apache-2.0", "permissive"),
    "apache 2.0": ("Apache-2.0", "permissive"),
    "apache license 2.0": ("Apache-2.0", "permissive"),
    "mit": ("MIT", "permissive"),
    "bsd-3-clause": ("BSD-3-Clause", "permissive"),
    "bsd-2-clause": ("BSD-2-Clause", "permissive"),
    "bsd": ("BSD-3-Clause", "permissive"),
    "cc-by-4.0": ("CC-BY-4.0", "permissive"),
    "cc-by-sa-4.0": ("CC-BY-SA-4.0", "copyleft"),
    "cc0-1.0": ("CC0-1.0", "permissive"),
    "gpl-3.0": ("GPL-3.0-only", "copyleft"),
    "agpl-3.0": ("AGPL-3.0-only", "copyleft"),
    "lgpl-3.0": ("LGPL-3.0-only", "copyleft"),
    "mpl-2.0": ("MPL-2.0", "copyleft"),
    "cc-by-nc-4.0": ("CC-BY-NC-4.0", "non-commercial"),
    "cc-by-nc-sa-4.0": ("CC-BY-NC-SA-4.0", "non-commercial"),
    "cc-by-nc-nd-4.0": ("CC-BY-NC-ND-4.0", "non-commercial"),
    "fair-noncommercial-research-license": ("LicenseRef-FAIR-Noncommercial-Research", "non-commercial"),
    "seer-license": ("LicenseRef-SEER", "non-commercial"),  # SEER weights: research use only
    "apple-amlr": (
        "LicenseRef-Apple-AMLR",
        "non-commercial",
    ),  # Apple ML Research model license: research only
    "apple-ascl": ("LicenseRef-Apple-Sample-Code", "permissive"),
    "https://github.com/facebookresearch/swag/blob/main/license": ("CC-BY-NC-4.0", "non-commercial"),
    "dinov3-license": ("LicenseRef-DINOv3", "unknown"),
    "cvnets-license": ("LicenseRef-Apple-CVNets", "unknown"),
    "fastvit-license": ("LicenseRef-Apple-FastViT", "unknown"),
    "mobileone-license": ("LicenseRef-Apple-MobileOne", "unknown"),
    "gemma": ("LicenseRef-Gemma-Terms", "unknown"),
    "llama2": ("LicenseRef-Llama-2-Community", "unknown"),
    "openrail": ("LicenseRef-OpenRAIL", "unknown"),
}

POLICIES = ("any", "permissive", "commercial")

# What each class means for a user, and which `--license` policies keep it (shown by `catalog show`).
CLASS_MEANING: dict[str, str] = {
    "permissive": "use, change and ship it, commercially too, keeping the notice; kept by every --license policy",
    "copyleft": "commercial use allowed, but what you ship (for AGPL also what you serve over a network) must be "
    "released under the same license; excluded by --license permissive and commercial",
    "non-commercial": "research or non-commercial use only; excluded by --license permissive and commercial",
    "unknown": "no license that could be verified (none stated, or custom terms not reviewed): treat it as not "
    "cleared; excluded by --license permissive and commercial",
}


def normalize_license(raw: str | None) -> tuple[str | None, str]:
    """Map a license string from a source to ``(spdx_or_licenseref, policy_class)``.

    Unknown or empty strings give ``(None, "unknown")``: a license is never guessed.
    """
    if raw is None:
        return None, "unknown"
    key = raw.strip().lower()
    if not key or key in {"unknown", "license", "other", "nan"}:
        return None, "unknown"
    if key in _TABLE:
        return _TABLE[key]
    if key.startswith("licenseref-"):
        return raw.strip(), "unknown"
    return f"LicenseRef-{raw.strip()}", "unknown"


COMMERCIAL_NOTE = (
    "--license commercial keeps weights usable commercially without copyleft obligations: copyleft (GPL, AGPL, "
    "LGPL, MPL, CC-BY-SA), non-commercial and unknown licenses are excluded"
)


def commercial_ok(license_class: str) -> bool:
    """Whether weights of this class may be used commercially without copyleft obligations (`COMMERCIAL_NOTE`):
    permissive only; copyleft (GPL/AGPL...) carries obligations, unknown is never assumed to allow it."""
    return license_class == "permissive"
