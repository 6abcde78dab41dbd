"""orderflow.worker_preload: a worker executes each DAG file once before its task processes fork.

What ops rely on: the warm-up never breaks a worker (a broken DAG file is skipped), it only runs
files Airflow would parse, and the project's own DAG files execute without a network or a database.
"""

from __future__ import annotations

from pathlib import Path

from orderflow import worker_preload

REPO = Path(__file__).resolve().parents[2]


def test_warm_executes_dag_files_once_and_skips_broken_and_unrelated_files(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    dags = tmp_path / "dags"
    (dags / "nested").mkdir(parents=True)
    mark = "from pathlib import Path\nPath({!r}, {!r}).touch()\n"
    (dags / "good.py").write_text("# an airflow dag\n" + mark.format(str(marks), "good"))
    (dags / "nested" / "deep.py").write_text("# airflow DAG, one folder down\n" + mark.format(str(marks), "deep"))
    (dags / "broken.py").write_text("# airflow dag\nraise RuntimeError('a broken DAG file')\n")
    (dags / "helper.py").write_text("# no DAG words here\n" + mark.format(str(marks), "helper"))
    (dags / "ignored.py").write_text("# airflow dag\n" + mark.format(str(marks), "ignored"))
    (dags / ".airflowignore").write_text("ignored.py\n")  # Airflow 3: glob syntax by default

    warmed = worker_preload.warm(dags)

    assert sorted(warmed) == ["deep.py", "good.py"]
    assert sorted(p.name for p in marks.iterdir()) == ["deep", "good"]


def test_the_projects_dag_files_all_warm():
    assert sorted(worker_preload.warm(REPO / "dags")) == [
        "order_event_sensor.py", "provision_order.py", "reconcile_orders.py"]
