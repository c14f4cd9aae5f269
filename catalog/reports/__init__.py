"""Reports: the plain work behind `generate-report` (catalog/jobs/reports.py).

`types` knows each report type's parameters, columns and rows (streamed from the
database); `writers` turns rows into a CSV or a PDF file, a chunk at a time; `service`
makes the Report row, writes the file to a temporary file, saves it to Django's storage
and writes the `report.ready` outbox event. docs/reports.md.
"""
