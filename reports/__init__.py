"""Structured reporting (issue #8): pure building blocks first.

`bsa`, `zscores` and `plausibility` are arithmetic with their sources cited; `pdf` and
`dicom_sr` turn a `pdf.ReportDocument` into the two documents a signed report travels as.
None of these modules touches the database.
"""
