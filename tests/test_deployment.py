"""docker-compose.yml and the Dockerfile, checked as far as possible without a Docker engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from conveyor.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_image_is_pinned_and_every_build_has_its_dockerfile() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if "build" in service:
            context = ROOT / (service["build"] if isinstance(service["build"], str) else ".")
            assert (context / "Dockerfile").exists(), name
        else:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = next(line for line in dockerfile.splitlines() if line.startswith("FROM"))
    assert ":" in base and "latest" not in base


def test_workers_wait_for_search_attributes_and_the_store_schema() -> None:
    services = compose()["services"]
    worker = services["worker"]
    assert worker["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["store-migrate"]["condition"] == "service_completed_successfully"
    assert services["store-migrate"]["command"] == ["python", "starter.py", "db", "upgrade"]
    setup = "\n".join(services["temporal-setup"]["command"])
    for name in ("ConveyorPipeline", "ConveyorStatus", "ConveyorNodes", "ConveyorAssignees"):
        assert name in setup
    assert worker["environment"]["CONVEYOR_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_the_api_serves_on_its_published_port_with_a_volume_for_exports() -> None:
    spec = compose()
    api = spec["services"]["api"]
    assert api["depends_on"]["store-migrate"]["condition"] == "service_completed_successfully"
    command = api["command"]
    assert command[:3] == ["python", "starter.py", "api"]
    port = command[command.index("--port") + 1]
    assert api["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert command[command.index("--host") + 1] == "0.0.0.0"  # reachable from outside
    volume, target = api["volumes"][0].split(":")
    assert volume in spec["volumes"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"CONVEYOR_DATA_DIR={target}" in dockerfile  # exports go to the volume
    assert api["environment"]["CONVEYOR_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_metrics_ports_agree_across_settings_compose_dockerfile_and_readme() -> None:
    sdk, app = Settings().metrics_port, Settings().app_metrics_port
    assert (sdk, app) == (9464, 9465)
    worker = compose()["services"]["worker"]
    assert worker["environment"]["CONVEYOR_METRICS_PORT"] == str(sdk)
    assert worker["environment"]["CONVEYOR_APP_METRICS_PORT"] == str(app)
    # Reachable by Prometheus inside the network; not published (replicas would collide).
    assert sorted(worker["expose"]) == [str(sdk), str(app)]
    assert "ports" not in worker
    dockerfile = (ROOT / "Dockerfile").read_text()
    exposed = [line.split()[1:] for line in dockerfile.splitlines() if line.startswith("EXPOSE")]
    assert exposed == [[str(sdk), str(app)]]
    readme = (ROOT / "README.md").read_text()
    assert f"| `CONVEYOR_METRICS_PORT` | `{sdk}` |" in readme
    assert f"| `CONVEYOR_APP_METRICS_PORT` | `{app}` |" in readme
