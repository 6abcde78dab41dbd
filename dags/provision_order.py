"""provision_order: one run per Salesforce Order — WHMCS AddOrder + AcceptOrder, then write back.

Trigger by hand from the UI (Trigger, fill in order_id), the CLI
(`airflow dags trigger provision_order -c '{"order_id": "801..."}'`) or the REST API. The steps
live in orderflow.provisioning; this file only wires them (docs/architecture.md, "Provisioning").
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import ExceptionRetryPolicy, Param, RetryAction, RetryRule, dag, task

from orderflow import settings
from orderflow.provisioning import tasks
from orderflow.provisioning.notifier import ActivationNotifier

# Permanent errors fail at once; everything else (transient errors) retries with backoff.
retry_policy = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception="orderflow.errors.PermanentError",
            action=RetryAction.FAIL,
            reason="permanent error: retrying cannot help",
        )
    ]
)

default_args = {
    "owner": "orderflow",
    "retries": settings.task_retries(),
    "retry_delay": settings.retry_delay(),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": settings.max_retry_delay(),
    "retry_policy": retry_policy,
    "execution_timeout": timedelta(minutes=10),
    "on_failure_callback": tasks.on_final_failure,
    # Finish orders already started before starting new ones: lower latency per order under load.
    "weight_rule": "upstream",
}


@dag(
    dag_id="provision_order",
    schedule=None,
    catchup=False,
    max_active_runs=16,
    max_active_tasks=8,
    is_paused_upon_creation=False,
    tags=["orderflow", "provisioning"],
    default_args=default_args,
    params={
        "order_id": Param(
            type="string",
            pattern=settings.ORDER_ID_PATTERN,
            title="Salesforce Order Id",
            description="15 or 18 characters, starts with 801 (the Order record's Id).",
        ),
        "idem_key": Param(None, type=["null", "string"], maxLength=80, title="Idempotency key",
                          description="Optional: the IdemKey__c of the approval event."),
        "source": Param("manual", enum=list(settings.SOURCES), title="Source",
                        description="Who started this run."),
    },
    doc_md=__doc__,
)
def provision_order():
    # multiple_outputs=False: a task annotated "-> dict" would otherwise also push every key of its result
    # as an XCom of its own (Airflow infers it from the annotation): 25 XCom writes an order instead of 5,
    # each a request to the execution API (bench/latency_bench.py's CPU table).
    @task(multiple_outputs=False, pool=settings.SALESFORCE_POOL)
    def load_order(params: dict | None = None) -> dict:
        return tasks.load_and_validate(params["order_id"])

    @task(pool=settings.WHMCS_POOL)
    def check_payment_method(order: dict) -> str:
        return tasks.check_payment_method(order)

    @task(multiple_outputs=False, pool=settings.WHMCS_POOL)
    def find_or_create_whmcs_order(order: dict, paymentmethod: str) -> dict:
        return tasks.find_or_create_order(order, paymentmethod)

    @task(multiple_outputs=False, pool=settings.WHMCS_POOL)
    def accept_whmcs_order(ref: dict) -> dict:
        return tasks.accept_order(ref)

    # The "activated" mail is write_back's success callback, not a task: one task start less per order.
    @task(multiple_outputs=False, pool=settings.SALESFORCE_POOL, on_success_callback=ActivationNotifier())
    def write_back(order: dict, ref: dict) -> dict:
        return tasks.write_back(order, ref)

    order = load_order()
    gateway = check_payment_method(order)
    created = find_or_create_whmcs_order(order, gateway)
    accepted = accept_whmcs_order(created)
    write_back(order, accepted)


provision_order()
