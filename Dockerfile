# orderflow images: the official Airflow image plus this repository, pinned by requirements.txt (as constraints,
# so each image gets only what its distributions need, at the pinned versions).
#   pipeline (the last stage, so the default of `docker build .`): the orderflow package and its dependencies only;
#            every Airflow service in docker-compose.yaml runs it.
#   sandbox: the pipeline plus the local Salesforce/WHMCS emulators (orderflow-sandbox, sandbox/pyproject.toml);
#            only docker-compose.yaml's sandbox profile runs it. Dev and demo only, never in production.
FROM apache/airflow:3.3.2-python3.11 AS orderflow
# README.md: the ops console takes its runbook steps from the README's table.
COPY --chown=airflow:0 requirements.txt pyproject.toml README.md /opt/orderflow/
COPY --chown=airflow:0 include /opt/orderflow/include
RUN pip install --no-cache-dir -c /opt/orderflow/requirements.txt "apache-airflow==${AIRFLOW_VERSION}" \
        -e /opt/orderflow

FROM orderflow AS sandbox
COPY --chown=airflow:0 sandbox /opt/orderflow/sandbox
# The org's SFDX metadata: the emulator builds its schema and platform events from it.
COPY --chown=airflow:0 salesforce /opt/orderflow/salesforce
RUN pip install --no-cache-dir -c /opt/orderflow/requirements.txt -e /opt/orderflow/sandbox

FROM orderflow AS pipeline
