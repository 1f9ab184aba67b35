#!/usr/bin/env python3
"""Predict, upload and follow a retrain with the Python client that openapi-python-client
generates from sprig's spec (package `sprig_client`). scripts/python-client.sh generates and
installs the client, starts a server and runs this; with the client installed, run it yourself:

    python3 scripts/python-client-demo.py --url http://127.0.0.1:8080 [--token TOKEN]

Exits non-zero on the first check that fails.
"""

import argparse
import io
import pathlib
import sys
import time

from sprig_client import AuthenticatedClient, Client
from sprig_client.api.images import upload_images
from sprig_client.api.jobs import retrain_status, start_retrain
from sprig_client.api.monitoring import readiness
from sprig_client.api.predict import predict
from sprig_client.models import (
    ErrorBody,
    JobStateName,
    PredictFilesBody,
    PredictResponse,
    Readiness,
    RetrainAccepted,
    RetrainRequest,
    RetrainStatus,
    UploadImagesFilesBody,
    UploadResponse,
)
from sprig_client.types import File

IMAGES = pathlib.Path(__file__).resolve().parent.parent / "data" / "beans-sample" / "test"
RETRAIN_TIMEOUT_S = 300


def check(condition, message, detail=None):
    """Prints `message` when `condition` holds; otherwise exits with it and the `detail`."""
    if not condition:
        sys.exit(f"FAIL: {message}\n  got: {detail}")
    print(f"ok: {message}")


def image(class_name, name):
    """A held-out demo image as a File (the generated type for binary bodies and form parts)."""
    payload = io.BytesIO((IMAGES / class_name / name).read_bytes())
    return File(payload=payload, file_name=name, mime_type="image/jpeg")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="sprig's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", help="bearer token, when the server has auth.token set")
    args = parser.parse_args()

    # Generous timeout: a prediction may wait behind a retrain on a small machine.
    anonymous = Client(base_url=args.url, timeout=120.0)
    client = (
        AuthenticatedClient(base_url=args.url, token=args.token, timeout=120.0)
        if args.token
        else anonymous
    )

    ready = readiness.sync(client=anonymous)
    check(isinstance(ready, Readiness) and ready.ready, "server ready", ready)

    # Predict: the raw-body variant, then the multipart form.
    raw = predict.sync(client=client, body=image("healthy", "test-healthy_0007.jpg"), filename="leaf.jpg")
    check(isinstance(raw, PredictResponse) and raw.filename == "leaf.jpg"
          and raw.predicted_class in raw.probabilities.additional_properties,
          "raw-body prediction", raw)
    print(f"   {raw.predicted_class} ({raw.confidence:.2f}) by model version {raw.model_version}")
    form = predict.sync(client=client, body=PredictFilesBody(file=image("bean_rust", "test-bean_rust_0019.jpg")))
    check(isinstance(form, PredictResponse) and form.filename == "test-bean_rust_0019.jpg",
          "multipart prediction", form)

    # Upload: two files in one multipart form, then one raw body with the class in the query.
    files = [image("healthy", "test-healthy_0005.jpg"), image("healthy", "test-healthy_0009.jpg")]
    uploaded = upload_images.sync(client=client, body=UploadImagesFilesBody(class_="healthy", files=files))
    check(isinstance(uploaded, UploadResponse) and (uploaded.stored, uploaded.rejected) == (2, 0),
          "multipart upload of two files to 'healthy'", uploaded)
    uploaded = upload_images.sync(client=client, body=image("bean_rust", "test-bean_rust_0021.jpg"),
                                  class_="bean_rust", filename="rust.jpg")
    check(isinstance(uploaded, UploadResponse) and uploaded.stored == 1
          and uploaded.items[0].image.filename == "rust.jpg",
          "raw-body upload to 'bean_rust'", uploaded)
    missing_class = upload_images.sync_detailed(client=client, body=image("healthy", "test-healthy_0030.jpg"))
    check(missing_class.status_code == 422 and isinstance(missing_class.parsed, ErrorBody)
          and missing_class.parsed.error.code == "invalid_class_name",
          "a raw-body upload without `class` is a 422 in the shared error shape", missing_class)
    if args.token:
        denied = upload_images.sync_detailed(client=anonymous, body=image("healthy", "test-healthy_0030.jpg"),
                                             class_="healthy")
        check(denied.status_code == 401 and denied.parsed.error.code == "unauthorized",
              "an upload without the token is refused with 401", denied)

    # Retrain and follow it through the original project's status shape.
    accepted = start_retrain.sync_detailed(client=client, body=RetrainRequest(epochs=2))
    check(accepted.status_code == 202 and isinstance(accepted.parsed, RetrainAccepted),
          "retrain accepted", accepted)
    job_id = accepted.parsed.job_id
    deadline = time.monotonic() + RETRAIN_TIMEOUT_S
    while True:
        status = retrain_status.sync(client=client)
        check(isinstance(status, RetrainStatus), "retrain status read", status)
        print(f"   {status.progress:3d}% {status.message}")
        if not status.is_running:
            break
        check(time.monotonic() < deadline, f"retrain finishes within {RETRAIN_TIMEOUT_S} s", status)
        time.sleep(1)
    check(status.job_id == job_id and status.state == JobStateName.SUCCEEDED,
          f"retrain job {job_id} succeeded", status)
    print("python client demo: all checks passed")


if __name__ == "__main__":
    main()
