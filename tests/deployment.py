"""The deployment template as the tests read it: `chalice package` with the merge template,
as `make package` runs it, and each function's role policy in it."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHALICE = Path(sys.executable).parent / "chalice"

# The functions, by the handler each runs, and their logical ids in the template.
HANDLERS = {"app.app": "api_handler", "app.join_videos": "join_videos",
            "app.expire_abandoned": "expire_abandoned"}


def package(out_dir: Path, stage: str = "dev") -> dict:
    """The merged template `make package` writes for the stage."""
    environment = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([str(CHALICE), "package", "--stage", stage, "--merge-template",
                           ".chalice/template.json", str(out_dir)],
                          cwd=ROOT, env=environment, capture_output=True, text=True)
    if done.returncode:  # chalice says why on its output
        raise RuntimeError(f"chalice package failed:\n{done.stderr[-3000:]}{done.stdout[-2000:]}")
    return json.loads((out_dir / "sam.json").read_text())


def functions(template: dict) -> dict[str, dict]:
    """Each function's resource, by function name (api_handler, join_videos, expire_abandoned)."""
    return {HANDLERS[resource["Properties"]["Handler"]]: resource
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::Serverless::Function"}


def role_of(template: dict, function: str) -> tuple[str, dict]:
    """The logical id of the function's role and its one policy document, as written."""
    role = functions(template)[function]["Properties"]["Role"]["Fn::GetAtt"][0]
    (policy,) = template["Resources"][role]["Properties"]["Policies"]
    return role, policy["PolicyDocument"]


def allowed_actions(template: dict, function: str) -> set[str]:
    _, document = role_of(template, function)
    return {action for statement in document["Statement"] if statement["Effect"] == "Allow"
            for action in statement["Action"]}
