"""docker-compose.yml and the Dockerfile, checked as far as possible without a Docker engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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
