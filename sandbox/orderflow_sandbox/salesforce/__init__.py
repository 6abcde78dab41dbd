"""The Salesforce org emulator: REST (OAuth JWT, SOQL, sObjects, collections, Bulk 2.0) and the Flow.

State lives in SQLite under the sandbox data folder; the schema comes from the SFDX metadata in
``salesforce/`` so a field missing from the metadata does not exist here either.
"""
