"""Datasets on the NeMo platform: files in the Data Store, registered in the Entity Store.

One dataset is one Data Store repository ``{namespace}/{name}`` of type ``dataset`` holding its files (the
blueprint's layout: ``eval_data.jsonl``; ``training/train_data.jsonl`` + ``validation/val_data.jsonl``), and one
Entity Store dataset of the same name whose ``files_url`` is ``hf://datasets/{namespace}/{name}`` — the name
Customizer and Evaluator jobs refer to.

Calls: namespaces through the SDK (Entity Store, ``POST /v1/namespaces``) and httpx (Data Store,
``POST /v1/datastore/namespaces``, form field ``namespace``); files through ``huggingface_hub`` at
``{datastore}/v1/hf`` (``create_repo`` + one ``create_commit`` with every file, so a dataset's files arrive
together); registration through the SDK (``GET``, then ``POST /v1/datasets`` or ``PATCH`` when it differs).
An existing namespace, repository or registration is reused (their 409s are expected), so an upload may be
repeated after a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.backends.nemo._client import PlatformClient, PlatformError
from flywheel.errors import BackendError, MissingDependencyError

logger = logging.getLogger(__name__)

#: Placeholder token the reference sends to the Data Store when ``HF_TOKEN`` is unset (the Data Store ignores it).
NO_TOKEN = "nothing"


@dataclass(frozen=True)
class DatasetRef:
    """A dataset on the platform."""

    namespace: str
    name: str

    @property
    def files_url(self) -> str:
        """Where its files are, as the Entity Store records it: ``hf://datasets/{namespace}/{name}``."""
        return f"hf://datasets/{self.namespace}/{self.name}"

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"


class NemoDatasets:
    """Uploads, registers and deletes datasets in one namespace of one platform."""

    def __init__(self, client: PlatformClient, namespace: str | None = None) -> None:
        self.client = client
        self.namespace = namespace or client.endpoints.namespace
        self._namespaces_ready = False
        self._hf: Any = None

    # ------------------------------------------------------------------------------------------------- public API

    def ensure_namespace(self) -> None:
        """Create the namespace in the Entity Store and in the Data Store unless it is there (once per instance)."""
        if self._namespaces_ready:
            return
        try:
            self.client.call(
                f"create namespace {self.namespace!r} in the Entity Store",
                lambda: self.client.sdk.namespaces.create(id=self.namespace),
            )
        except PlatformError as exc:
            if exc.status_code != 409:
                raise
        url = f"{self.client.endpoints.datastore_base_url}/v1/datastore/namespaces"

        def create_in_data_store() -> None:
            response = self.client.http.post(url, data={"namespace": self.namespace})
            if response.status_code not in (409, 422):  # exists (the reference accepts a 422 as well)
                response.raise_for_status()

        self.client.call(f"create namespace {self.namespace!r} in the Data Store", create_in_data_store)
        self._namespaces_ready = True

    def upload(
        self, name: str, files: Mapping[str, bytes | str | Path], *, description: str = ""
    ) -> DatasetRef:
        """Put ``files`` (path in the repository → content, or a local file) in dataset ``name`` and register it.

        Returns where it is; repeating the upload with the same files changes nothing.
        """
        if not files:
            raise ValueError("a dataset needs at least one file")
        ref = DatasetRef(self.namespace, name)
        self.ensure_namespace()
        hf = self._hf_api()
        from huggingface_hub import CommitOperationAdd

        self.client.call(
            f"create Data Store repository {ref.repo_id!r}",
            lambda: hf.create_repo(ref.repo_id, repo_type="dataset", exist_ok=True),
        )
        operations = [
            CommitOperationAdd(path_in_repo=path, path_or_fileobj=_content(content))
            for path, content in files.items()
        ]
        self.client.call(
            f"upload {len(operations)} file(s) to Data Store repository {ref.repo_id!r}",
            lambda: hf.create_commit(
                ref.repo_id,
                operations=operations,
                commit_message=f"flywheel: {', '.join(files)}",
                repo_type="dataset",
            ),
        )
        self._register(ref, description)
        logger.info("dataset %s uploaded (%d file(s)) and registered", ref.files_url, len(operations))
        return ref

    def delete(self, ref: DatasetRef) -> None:
        """Remove the dataset's files and its registration; what is already gone is fine."""
        hf = self._hf_api()
        try:
            self.client.call(
                f"delete Data Store repository {ref.repo_id!r}",
                lambda: hf.delete_repo(ref.repo_id, repo_type="dataset"),
            )
        except PlatformError as exc:
            if exc.status_code != 404:
                raise
        try:
            self.client.call(
                f"delete dataset {ref.repo_id!r} from the Entity Store",
                lambda: self.client.sdk.datasets.delete(ref.name, namespace=ref.namespace),
            )
        except PlatformError as exc:
            if exc.status_code != 404:
                raise

    # ------------------------------------------------------------------------------------------------- internals

    def _hf_api(self) -> Any:
        if self._hf is None:
            try:
                from huggingface_hub import HfApi
            except ImportError as exc:
                raise MissingDependencyError("huggingface_hub", "nemo") from exc
            from huggingface_hub import constants

            if constants.HF_HUB_OFFLINE:
                raise BackendError(
                    "HF_HUB_OFFLINE is set, and huggingface_hub then refuses every request, including those to the "
                    f"NeMo Data Store ({self.client.endpoints.hf_endpoint}) that datasets are uploaded to; unset "
                    "HF_HUB_OFFLINE for the process that runs the nemo backend."
                )
            # An explicit token, so that no Hugging Face Hub token saved on this machine goes to the Data Store.
            token = self.client.endpoints.hf_token or NO_TOKEN
            self._hf = HfApi(endpoint=self.client.endpoints.hf_endpoint, token=token)
        return self._hf

    def _register(self, ref: DatasetRef, description: str) -> None:
        sdk = self.client.sdk
        what = f"register dataset {ref.repo_id!r} in the Entity Store"
        try:
            current = self.client.call(what, lambda: sdk.datasets.retrieve(ref.name, namespace=ref.namespace))
        except PlatformError as exc:
            if exc.status_code != 404:
                raise
            current = None
        if current is None:
            try:
                self.client.call(
                    what,
                    lambda: sdk.datasets.create(
                        name=ref.name,
                        namespace=ref.namespace,
                        files_url=ref.files_url,
                        description=description,
                    ),
                )
                return
            except PlatformError as exc:
                if exc.status_code != 409:  # registered meanwhile: bring it up to date below
                    raise
        elif current.files_url == ref.files_url and (current.description or "") == description:
            return
        self.client.call(
            what,
            lambda: sdk.datasets.update(
                ref.name, namespace=ref.namespace, files_url=ref.files_url, description=description
            ),
        )


def _content(content: bytes | str | Path) -> bytes | str:
    """What ``CommitOperationAdd`` takes: bytes as they are, text as UTF-8, a path as the file's path."""
    if isinstance(content, Path):
        return str(content)
    if isinstance(content, str):
        return content.encode()
    return content
