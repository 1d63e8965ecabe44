"""`syncd import FILE.csv`: a CSV file into any module, without a legacy table or a pipeline.

``files`` reads the input by record and cuts it into parts within Zoho's limits, and merges
Zoho's per-row results into ``FILE.results.csv``; ``run`` sends the parts as Bulk Write jobs
through the CRM client, journaled in the state store so a killed import resumes instead of
paying again.
"""
