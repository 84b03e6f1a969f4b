"""Query and download code against a local HTTP server serving recorded fixtures."""

import gzip
import json
import socket
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import EDGE, ROOT
from hessian_powerlaw import cli
from hessian_powerlaw.config import defaults
from hessian_powerlaw.protein import rcsb
from hessian_powerlaw.protein.entries import read_entries

FIXTURES = ROOT / "tests" / "data" / "rcsb"
CIF_TEXT = (EDGE / "4i39.cif").read_text()


def cif_gz(entry):
    """The 4I39 fixture relabelled as `entry` (a server answers with the entry asked for)."""
    return gzip.compress(CIF_TEXT.replace("4I39", entry).encode(), mtime=0)


CIF_GZ = cif_gz("4HHB")
QUERY = defaults()["pdb"]["query"]


def _bomb(size):
    """A gzip of `size` bytes of mmCIF-looking text, built in pieces (never held inflated)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = b"data_5BMB\n_atom_site.id\n"
    line = b"1 " * 32768
    parts = [packer.compress(head)] + [packer.compress(line) for _ in range(size // len(line))]
    return b"".join(parts) + packer.flush()


BOMB = _bomb(300 * 2**20)


class Server:
    """Routes: POST /search (paged fixtures), GET /download/{ID}.cif.gz with per-id behaviour."""

    def __init__(self):
        self.requests, self.bodies, self.agents = [], [], []
        self.page_size = 3
        self.search_status = 200
        self.flaky = {"2REG": 1}  # id -> number of 429 answers before success
        self.broken = {"8RST": 1, "9TRC": 1}  # id -> number of reset / cut-short answers before success
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body=b"", headers=()):
                self.send_response(code)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.bodies.append(body)
                owner.agents.append(self.headers["User-Agent"])
                if owner.search_status == 204:
                    return self._send(204)
                start = body["request_options"]["paginate"]["start"]
                page = start // owner.page_size + 1
                path = FIXTURES / f"search_page{page}.json"
                self._send(200, path.read_bytes() if path.exists() else b"")

            def do_GET(self):
                owner.requests.append(self.path)
                owner.agents.append(self.headers["User-Agent"])
                name = self.path.rsplit("/", 1)[-1]
                entry = name.split(".")[0]
                if entry in ("4HHB", "1AKI", "5CNA", "7TAA"):
                    return self._send(200, cif_gz(entry))
                if entry in owner.flaky:
                    if owner.flaky[entry] > 0:
                        owner.flaky[entry] -= 1
                        return self._send(429, b"slow down", [("Retry-After", "0")])
                    return self._send(200, cif_gz(entry))
                if entry == "1WRG":  # another entry's file
                    return self._send(200, cif_gz("4HHB"))
                if entry == "2RDR":  # a redirect to another host
                    return self._send(302, b"", [("Location", "http://localhost:9/download/2RDR.cif.gz")])
                if entry == "3BIG":  # announces 1 TB
                    self.send_response(200)
                    self.send_header("Content-Length", str(10**12))
                    self.end_headers()
                    self.wfile.write(b"x" * 1000)
                    return None
                if entry == "4DRP":  # one byte every 0.5 s
                    self.send_response(200)
                    self.end_headers()
                    for byte in cif_gz(entry)[:8]:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.5)
                    return None
                if entry == "5BMB":  # 300 MB of mmCIF in a small gzip
                    return self._send(200, BOMB)
                if entry == "6WAI":
                    return self._send(503, b"busy", [("Retry-After", "86400")])
                if owner.broken.get(entry, 0) > 0:
                    owner.broken[entry] -= 1
                    if entry == "8RST":  # connection reset without an answer
                        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.close_connection = True
                        return self.request.close()
                    self.send_response(200)  # announces the whole file, sends a third of it
                    self.send_header("Content-Length", str(len(CIF_GZ)))
                    self.end_headers()
                    self.wfile.write(CIF_GZ[: len(CIF_GZ) // 3])
                    self.close_connection = True
                    return None
                if entry in owner.broken:
                    return self._send(200, cif_gz(entry))
                if entry == "5ERR":
                    return self._send(500, b"internal error")
                if entry == "6TRN":
                    return self._send(200, CIF_GZ[: len(CIF_GZ) // 3])
                if entry == "7HTM":
                    return self._send(200, gzip.compress(b"<html><body>Service unavailable</body></html>"))
                self._send(404, b"not found")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def query_for(server):
    return {**QUERY, "url": f"{server.url}/search", "rows_per_page": server.page_size}


def test_search_paginates_and_reduces_entities_to_entries(server):
    ids = rcsb.search_entries(query_for(server), 100, 2000, backoff=0)
    assert ids == ["4HHB", "1AKI", "5CNA", "2REG", "7TAA"]
    assert [b["request_options"]["paginate"]["start"] for b in server.bodies] == [0, 3, 6]
    body = server.bodies[0]
    nodes = {n["parameters"]["attribute"]: n["parameters"] for n in body["query"]["nodes"]}
    assert nodes["exptl.method"]["value"] == "X-RAY DIFFRACTION"
    assert nodes["rcsb_entry_info.resolution_combined"] == {
        "attribute": "rcsb_entry_info.resolution_combined",
        "operator": "less_or_equal",
        "value": 2.0,
    }
    assert nodes["rcsb_entry_info.selected_polymer_entity_types"]["value"] == "Protein (only)"
    assert nodes["rcsb_entry_info.deposited_polymer_monomer_count"]["value"]["from"] == 100
    assert nodes["rcsb_entry_info.deposited_polymer_monomer_count"]["value"]["to"] == 2000
    assert body["return_type"] == "polymer_entity"
    group = body["request_options"]["group_by"]
    assert group["aggregation_method"] == "sequence_identity" and group["similarity_cutoff"] == 30
    assert body["request_options"]["group_by_return_type"] == "representatives"
    assert all(agent.startswith("hessian-powerlaw/") for agent in server.agents)


def test_search_204_means_empty(server):
    server.search_status = 204
    assert rcsb.search_entries(query_for(server), 100, 2000, backoff=0) == []


def test_downloads_retry_verify_and_never_cache_bad_files(server, tmp_path):
    ids = ["4HHB", "2REG", "5ERR", "6TRN", "7HTM", "9ZZZ", "../etc", "8RST", "9TRC"]
    rows = rcsb.download_entries(
        ids, tmp_path, f"{server.url}/download", workers=3, retries=2, timeout=5, backoff=0.01
    )
    status = {r["pdb_id"]: r for r in rows}
    assert [r["pdb_id"] for r in rows] == ids
    assert status["4HHB"]["status"] == "downloaded"
    assert status["2REG"]["status"] == "downloaded"  # after one 429
    assert status["5ERR"]["status"] == "failed" and "HTTP 500" in status["5ERR"]["reason"]
    assert status["6TRN"]["status"] == "failed" and "corrupt gzip" in status["6TRN"]["reason"]
    assert status["7HTM"]["status"] == "failed" and "not an mmCIF" in status["7HTM"]["reason"]
    assert status["9ZZZ"]["status"] == "failed" and "HTTP 404" in status["9ZZZ"]["reason"]
    assert status["../etc"]["status"] == "failed" and "invalid PDB id" in status["../etc"]["reason"]
    assert status["8RST"]["status"] == "downloaded"  # after a connection reset
    assert status["9TRC"]["status"] == "downloaded"  # after a transfer cut short
    assert server.requests.count("/download/8RST.cif.gz") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "2REG.cif.gz",
        "4HHB.cif.gz",
        "8RST.cif.gz",
        "9TRC.cif.gz",
    ]
    assert (tmp_path / "2REG.cif.gz").read_bytes() == cif_gz("2REG")
    assert server.requests.count("/download/5ERR.cif.gz") == 3  # 1 + 2 retries
    assert server.requests.count("/download/9ZZZ.cif.gz") == 1  # 404 is not retried
    assert not any("etc" in r for r in server.requests)
    gzip.decompress((tmp_path / "4HHB.cif.gz").read_bytes())


def test_hostile_servers_are_bounded_and_wrong_files_refused(server, tmp_path):
    """Another entry's file, a redirect to another host, a 1 TB Content-Length, a byte drip, a
    gzip bomb and Retry-After 86400: each a failed row with its reason, in bounded time and
    memory, nothing cached."""
    ids = ["1WRG", "2RDR", "3BIG", "4DRP", "5BMB", "6WAI"]
    start = time.monotonic()
    rows = rcsb.download_entries(ids, tmp_path, f"{server.url}/download", retries=1, timeout=2, backoff=0.01)
    assert time.monotonic() - start < 30
    status = {r["pdb_id"]: r for r in rows}
    assert all(r["status"] == "failed" for r in rows), rows
    assert "holds entry 4HHB, not 1WRG" in status["1WRG"]["reason"]
    assert "refused redirect" in status["2RDR"]["reason"]
    assert "larger than" in status["3BIG"]["reason"]
    assert "more than 2 s" in status["4DRP"]["reason"]
    assert "a gzip bomb" in status["5BMB"]["reason"]
    assert "retry after 86400 s" in status["6WAI"]["reason"]
    assert server.requests.count("/download/6WAI.cif.gz") == 1
    assert list(tmp_path.iterdir()) == []


def test_cache_is_reused_and_bad_cache_replaced(server, tmp_path):
    (tmp_path / "4HHB.cif.gz").write_bytes(CIF_GZ)
    (tmp_path / "1AKI.cif.gz").write_bytes(CIF_GZ[:100])  # a truncated leftover
    (tmp_path / "5CNA.cif.gz").write_bytes(CIF_GZ)  # another entry's file under this name
    rows = rcsb.download_entries(
        ["4HHB", "1AKI", "5CNA"], tmp_path, f"{server.url}/download", retries=0, backoff=0
    )
    assert [r["status"] for r in rows] == ["cached", "downloaded", "downloaded"]
    assert sorted(server.requests) == ["/download/1AKI.cif.gz", "/download/5CNA.cif.gz"]
    assert (tmp_path / "1AKI.cif.gz").read_bytes() == cif_gz("1AKI")


def test_validate_id():
    assert rcsb.validate_id("4hhb") == "4HHB"
    for bad in ("../x", "4HHB/..", "ABCD", "4HH", "4HHB1", "", None):
        with pytest.raises(ValueError):
            rcsb.validate_id(bad)


def test_cli_select_and_download(server, tmp_path):
    entries = tmp_path / "entries.tsv"
    code = cli.main(
        [
            "select",
            "--source",
            "rcsb",
            "--query-url",
            f"{server.url}/search",
            "--rows-per-page",
            "3",
            "--max-entries",
            "4",
            "--cache",
            str(tmp_path / "cache"),
            "--out",
            str(entries),
        ]
    )
    assert code == 0
    text = entries.read_text()
    assert "# date: " in text and '"similarity_cutoff": 30' in text and "# source: rcsb" in text
    rows = read_entries(entries)
    assert [r["pdb_id"] for r in rows] == ["4HHB", "1AKI", "5CNA", "2REG"]
    status = tmp_path / "downloads.tsv"
    code = cli.main(
        [
            "download",
            "--entries",
            str(entries),
            "--batch",
            "0",
            "--batch-size",
            "3",
            "--cache",
            str(tmp_path / "cache"),
            "--base-url",
            f"{server.url}/download",
            "--retries",
            "0",
            "--out",
            str(status),
        ]
    )
    assert code == 0
    assert status.read_text().count("downloaded") == 3
    table = tmp_path / "table.tsv"
    assert (
        cli.main(
            [
                "protein",
                "--entries",
                str(entries),
                "--batch",
                "0",
                "--batch-size",
                "3",
                "--downloads",
                str(status),
                "--min-residues",
                "50",
                "--no-compare",
                "--out",
                str(table),
            ]
        )
        == 0
    )
    assert table.read_text().count("\tok\t") == 3
