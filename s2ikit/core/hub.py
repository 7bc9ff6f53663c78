"""The Hugging Face Hub as a place for export folders: fetch a model repo into the Hub's cache, push a folder to one.

`huggingface_hub` is optional and imported only here, only when a Hub id is used. It reads its own switches from the
environment: HF_HUB_OFFLINE (cache only), HF_HOME / HF_HUB_CACHE (where the cache is), HF_ENDPOINT, HF_TOKEN (or
the token `hf auth login` saved). Only the files of an export are fetched (config.json, the safetensors weights, the
model card), never a pickle; the caller validates the folder exactly as a local export (export.load_export).
Every failure is one line naming the repo: not found, no such revision, offline with nothing cached.
"""

from __future__ import annotations

import re
from pathlib import Path

from s2ikit.utils.errors import UserError

INSTALL = "pip install huggingface_hub"
# the files of an export folder (export.py); nothing else of a repo is fetched or pushed
EXPORT_FILES = ["config.json", "*.safetensors", "README.md"]
# owner/name as the Hub spells repo ids: letters, digits, `-`, `_`, `.`; neither part starts with `.` or `-`
_REPO_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9_][A-Za-z0-9_.-]{0,95}")


def is_hub_id(source: str | Path) -> bool:
    """Whether `source` has the `owner/name` shape of a Hub model repo (callers check for a local path first)."""
    text = str(source)
    return bool(_REPO_ID.fullmatch(text)) and ".." not in text and not text.endswith((".pt", ".git"))


def check_repo_id(repo_id: str, what: str = "--push-to-hub") -> str:
    if not is_hub_id(repo_id):
        raise UserError(f"{what} {repo_id!r}: a Hub repo id is USER/NAME (letters, digits, - _ .)")
    return repo_id


def _library():
    try:
        import huggingface_hub
    except ImportError:
        raise UserError(f"Hub ids need the huggingface_hub package: {INSTALL}") from None
    return huggingface_hub


def _failures() -> tuple[type[Exception], ...]:
    """What a failed exchange with the Hub raises beyond huggingface_hub's own errors: OSError, ValueError and the
    HTTP client's errors (httpx2, a dependency of huggingface_hub 2; e.g. a refused connection)."""
    from huggingface_hub import errors

    try:
        import httpx2
    except ImportError:
        return errors.HfHubHTTPError, OSError, ValueError
    return errors.HfHubHTTPError, OSError, ValueError, httpx2.HTTPError


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def download(repo_id: str, revision: str | None = None) -> Path:
    """The folder of `repo_id` at `revision` (a branch, tag or commit; default main) in the Hub's cache, fetched
    when missing or out of date. Only an export's files are fetched."""
    hub = _library()
    from huggingface_hub import errors

    at = f" at revision {revision!r}" if revision else ""
    try:
        folder = hub.snapshot_download(repo_id, revision=revision, allow_patterns=EXPORT_FILES)
    except errors.RevisionNotFoundError:
        raise UserError(f"{repo_id}: the Hub repo has no revision {revision!r} (a branch, tag or commit)") from None
    except errors.GatedRepoError:
        raise UserError(f"{repo_id}: gated; accept its terms on its Hub page and log in (`hf auth login`)") from None
    except errors.RepositoryNotFoundError:
        raise UserError(f"{repo_id}: neither a local path nor a model repo on the Hub (a private repo needs "
                        "`hf auth login` or HF_TOKEN)") from None  # fmt: skip
    except errors.LocalEntryNotFoundError as e:
        offline = hub.constants.HF_HUB_OFFLINE or isinstance(e.__cause__, errors.OfflineModeIsEnabled)
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
        raise UserError(f"{repo_id}{at}: not in the Hub cache ({hub.constants.HF_HUB_CACHE}) and {why}") from None
    except _failures() as e:
        raise UserError(f"{repo_id}{at}: cannot download from the Hub ({_first_line(e)})") from None
    return Path(folder)


def upload(folder: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
           message: str = "Upload s2ikit export") -> str:  # fmt: skip
    """Push an export folder's files to the model repo `repo_id` (created when missing, `private` then), on branch
    `revision` (created from main when missing; default main). Returns the commit's URL."""
    check_repo_id(repo_id)
    hub = _library()
    from huggingface_hub import errors

    api = hub.HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", private=private or None, exist_ok=True)  # None: the default
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, revision=revision,
                                   allow_patterns=EXPORT_FILES, commit_message=message)  # fmt: skip
    except errors.OfflineModeIsEnabled:
        raise UserError(f"{repo_id}: cannot push while HF_HUB_OFFLINE is set") from None
    except _failures() as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        login = "; log in with `hf auth login` or set HF_TOKEN" if status in (401, 403) else ""
        raise UserError(f"{repo_id}: push to the Hub failed ({_first_line(e)}){login}") from None
    return str(commit.commit_url)
