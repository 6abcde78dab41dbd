"""Local emulators of a Salesforce org and of WHMCS, for the demo and the tests.

They speak the real wire protocols over TLS (REST/JSON, form-encoded api.php, Pub/Sub
gRPC), so orderflow's client code runs against them unchanged.
"""
