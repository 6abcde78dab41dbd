# orderflow image: the official Airflow image plus the pinned set and this package.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:0 requirements.txt pyproject.toml /opt/orderflow/
COPY --chown=airflow:0 include /opt/orderflow/include
COPY --chown=airflow:0 sandbox /opt/orderflow/sandbox
RUN pip install --no-cache-dir -c /opt/orderflow/requirements.txt "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/orderflow/requirements.txt \
 && pip install --no-cache-dir --no-deps -e /opt/orderflow
