"""RCSB PDB: the study's filtered entry list (Search API v2) and mmCIF downloads."""

import datetime
import email.utils
import http.client
import json
import os
import random
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import gemmi

from hessian_powerlaw import __version__
from hessian_powerlaw.io import write_bytes
from hessian_powerlaw.protein.structure import MAX_TEXT_BYTES, PDB_ID, StructureError, gunzip

USER_AGENT = f"hessian-powerlaw/{__version__} (+https://github.com/hessian-powerlaw/hessian-powerlaw)"
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
ENTITY_ID = re.compile(r"^([0-9][A-Za-z0-9]{3})_\d+$")


class DownloadError(RuntimeError):
    """A request that failed for good (after retries, or not retryable)."""


def validate_id(pdb_id: str) -> str:
    """Return the upper-case id, or raise ValueError before it reaches a URL or a path."""
    if not isinstance(pdb_id, str) or not PDB_ID.match(pdb_id):
        raise ValueError(f"invalid PDB id {pdb_id!r} (expected 4 characters, digit first)")
    return pdb_id.upper()


def terminal(attribute: str, operator: str, value: object) -> dict:
    """One terminal node of an RCSB search query."""
    return {
        "type": "terminal",
        "service": "text",
        "parameters": {"attribute": attribute, "operator": operator, "value": value},
    }


def build_query(query: dict, min_residues: int, max_residues: int, start: int = 0) -> dict:
    """The RCSB Search API v2 request for the study's selection, one page.

    Parameters
    ----------
    query : dict
        The config's pdb.query: experimental method, resolution limit, polymer types, sequence
        identity cutoff, the API's url and rows per page.
    min_residues, max_residues : int
        The range of deposited polymer residues.
    start : int, default 0
        The first result of the page.

    Returns
    -------
    dict
        The JSON request body.
    """
    return {
        "query": {
            "type": "group",
            "logical_operator": "and",
            "nodes": [
                terminal("exptl.method", "exact_match", query["method"]),
                terminal("rcsb_entry_info.resolution_combined", "less_or_equal", query["max_resolution"]),
                terminal(
                    "rcsb_entry_info.selected_polymer_entity_types",
                    "exact_match",
                    query["polymer_types"],
                ),
                terminal(
                    "rcsb_entry_info.deposited_polymer_monomer_count",
                    "range",
                    {
                        "from": min_residues,
                        "to": max_residues,
                        "include_lower": True,
                        "include_upper": True,
                    },
                ),
            ],
        },
        "return_type": "polymer_entity",
        "request_options": {
            "group_by": {
                "aggregation_method": "sequence_identity",
                "similarity_cutoff": query["identity_cutoff"],
                "ranking_criteria_type": {
                    "sort_by": "rcsb_entry_info.resolution_combined",
                    "direction": "asc",
                },
            },
            "group_by_return_type": "representatives",
            "paginate": {"start": start, "rows": query["rows_per_page"]},
            "results_content_type": ["experimental"],
        },
    }


MAX_RESPONSE_BYTES = 256 * 2**20  # no mmCIF.gz the study can use comes near this
MAX_RETRY_AFTER = 120.0  # seconds: a server asking for a longer pause is given up on, not waited for


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only within the host asked (a mirror must not send us elsewhere)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if (new.scheme, new.netloc) != (old.scheme, old.netloc):
            raise DownloadError(f"refused redirect from {req.full_url} to another host ({newurl})")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SameHostRedirects)


def request(
    url: str,
    data: dict | None = None,
    retries: int = 5,
    timeout: float = 60,
    backoff: float = 1.0,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> tuple[int, bytes]:
    """GET (or POST JSON `data`) with retries on 429/5xx/timeouts; returns (status, body).

    Each attempt has `timeout` seconds in all (a server that drips bytes is cut off), a body
    over `max_bytes` is refused (by its Content-Length before reading, else while reading), a
    Retry-After above MAX_RETRY_AFTER ends the retries, redirects stay on the same host.
    """
    body = None if data is None else json.dumps(data).encode()
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    last = "no attempt"
    for attempt in range(retries + 1):
        req = urllib.request.Request(url, data=body, headers=headers)
        wait = backoff * 2**attempt * (1 + 0.25 * random.random())
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                return resp.status, _read_body(resp, url, timeout, max_bytes)
        except urllib.error.HTTPError as err:
            if err.code not in RETRY_STATUS:
                raise DownloadError(f"HTTP {err.code} {err.reason} for {url}") from None
            last = f"HTTP {err.code}"
            asked = _retry_after(err.headers.get("Retry-After"))
            if asked > MAX_RETRY_AFTER:
                raise DownloadError(
                    f"HTTP {err.code} for {url}: the server asks to retry after {asked:.0f} s "
                    f"(more than {MAX_RETRY_AFTER:.0f} s); try again later"
                ) from None
            wait = max(wait, asked)
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
            last = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
        if attempt < retries:
            time.sleep(min(wait, MAX_RETRY_AFTER))
    raise DownloadError(f"{last} for {url} after {retries + 1} attempts")


def _read_body(resp, url, timeout, max_bytes):
    """The response body, read in chunks within `timeout` seconds in all and `max_bytes`."""
    length = resp.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise DownloadError(f"{url}: response of {int(length)} bytes is larger than {max_bytes} bytes")
    deadline, chunks, size = time.monotonic() + timeout, [], 0
    while True:
        chunk = resp.read1(1 << 16)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise DownloadError(f"{url}: response larger than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise TimeoutError(f"transfer took more than {timeout} s")
        chunks.append(chunk)


def _retry_after(value):
    if not value:
        return 0.0
    try:
        return float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 0.0
        return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


def search_entries(
    query: dict,
    min_residues: int,
    max_residues: int,
    retries: int = 5,
    timeout: float = 60,
    backoff: float = 1.0,
) -> list[str]:
    """Entry ids of the study's selection from the RCSB Search API, every page.

    Parameters
    ----------
    query : dict
        The config's pdb.query, as for `build_query`.
    min_residues, max_residues : int
        The range of deposited polymer residues.
    retries : int, default 5
        Retries of a failed request.
    timeout : float, default 60
        Seconds per request.
    backoff : float, default 1.0
        Seconds before the first retry, doubling each time.

    Returns
    -------
    list of str
        Unique entry ids, in search order.
    """
    ids, start = [], 0
    while True:
        payload = build_query(query, min_residues, max_residues, start)
        status, body = request(query["url"], payload, retries, timeout, backoff)
        if status == 204 or not body:
            break
        result = json.loads(body)
        page = result.get("result_set", [])
        for item in page:
            match = ENTITY_ID.match(item.get("identifier", ""))
            if match:
                ids.append(match.group(1).upper())
        start += len(page)
        total = result.get("group_by_count", result.get("total_count", 0))
        print(f"query: {start} of {total} representatives", file=sys.stderr)
        if len(page) < query["rows_per_page"] or start >= total:
            break
    return list(dict.fromkeys(ids))


def verify_mmcif_gz(data: bytes, pdb_id: str | None = None) -> None:
    """Raise ValueError unless `data` is a complete gzip of a parseable mmCIF with atoms (of
    entry `pdb_id`, when given: a mirror answering with another entry is caught)."""
    try:
        text = gunzip(data, MAX_TEXT_BYTES).decode("latin-1")
    except StructureError as err:
        raise ValueError(err.args[0]) from None
    if not text.lstrip().startswith("data_") or "_atom_site." not in text:
        raise ValueError("not an mmCIF file with atom records")
    block = text.lstrip()[5:].split(None, 1)[0].upper() if len(text.lstrip()) > 5 else ""
    if pdb_id is not None and block != pdb_id.upper():
        raise ValueError(f"the file holds entry {block[:20] or '(unnamed)'}, not {pdb_id.upper()}")
    try:
        structure = gemmi.make_structure_from_block(gemmi.cif.read_string(text).sole_block())
    except Exception as err:  # gemmi raises ValueError/RuntimeError on malformed input
        raise ValueError(
            f"mmCIF does not parse ({type(err).__name__}: {' '.join(str(err).split())[:200]})"
        ) from None
    if len(structure) == 0 or structure[0].count_atom_sites() == 0:
        raise ValueError("mmCIF has no atoms")


def cache_path(cache: str | os.PathLike, pdb_id: str) -> Path:
    """Where the cached mmCIF of an entry lies.

    Parameters
    ----------
    cache : str or os.PathLike
        The cache directory.
    pdb_id : str
        A four-character PDB id.

    Returns
    -------
    Path
        ``cache/<ID>.cif.gz``, the id in upper case.

    Raises
    ------
    ValueError
        For an id that is not 4 characters, digit first (it never reaches a path or a URL).
    """
    return Path(cache) / f"{validate_id(pdb_id)}.cif.gz"


def fetch_entry(
    pdb_id: str,
    cache: str | os.PathLike,
    base_url: str,
    retries: int = 5,
    timeout: float = 60,
    backoff: float = 1.0,
) -> dict:
    """Download one entry into the cache (verified, atomic); returns a status row."""
    row = {"pdb_id": pdb_id, "path": "", "status": "failed", "reason": ""}
    try:
        path = cache_path(cache, pdb_id)
    except ValueError as err:
        row["reason"] = str(err)
        return row
    row["path"] = str(path)
    if path.is_file():
        try:
            verify_mmcif_gz(path.read_bytes(), pdb_id)
            row["status"] = "cached"
            return row
        except ValueError:
            path.unlink()  # a bad cached file is never trusted
    url = f"{base_url.rstrip('/')}/{path.name}"
    attempts = max(1, retries + 1)
    for attempt in range(attempts):
        try:
            _, data = request(url, None, retries, timeout, backoff)
            verify_mmcif_gz(data, pdb_id)
        except DownloadError as err:
            row["reason"] = str(err)
            return row
        except ValueError as err:
            row["reason"] = f"{url}: {err}"
            if attempt + 1 < attempts:
                time.sleep(backoff * 2**attempt)
            continue
        write_bytes(path, data)
        row.update(status="downloaded", reason="")
        return row
    return row


def download_entries(
    ids: Iterable[str],
    cache: str | os.PathLike,
    base_url: str,
    workers: int = 4,
    retries: int = 5,
    timeout: float = 60,
    backoff: float = 1.0,
) -> list[dict]:
    """Fetch entries into the cache with bounded parallelism, progress on stderr.

    A cached file is verified and kept; a download is verified (gzip, mmCIF, the entry's id)
    before it is moved into place.

    Parameters
    ----------
    ids : iterable of str
        PDB ids.
    cache : str or os.PathLike
        The cache directory.
    base_url : str
        Where ``<id>.cif.gz`` files are served (RCSB's download host, or a mirror).
    workers : int, default 4
        Downloads at once.
    retries : int, default 5
        Retries of a failed request.
    timeout : float, default 60
        Seconds per request.
    backoff : float, default 1.0
        Seconds before the first retry, doubling each time.

    Returns
    -------
    list of dict
        {pdb_id, path, status ('downloaded', 'cached' or 'failed'), reason}, in input order.
    """
    ids = list(ids)
    rows = [None] * len(ids)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(fetch_entry, pdb_id, cache, base_url, retries, timeout, backoff): i
            for i, pdb_id in enumerate(ids)
        }
        for done, future in enumerate(as_completed(futures), 1):
            rows[futures[future]] = future.result()
            if done % 10 == 0 or done == len(ids):
                print(f"download: {done}/{len(ids)}", file=sys.stderr)
    return rows
