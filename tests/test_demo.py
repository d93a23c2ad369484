"""`make demo` runs examples/demo.py: it must work end to end and tell the truth about what it did."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reports_what_was_stored_and_refused() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    stored = re.search(r"(\d+) events stored durably", out)
    refused = re.search(r"(\d+) requests refused", out)
    assert stored is not None and int(stored.group(1)) == 27, out  # 24, and 3 of the intermediaries step
    assert refused is not None and int(refused.group(1)) == 6, out  # 5, and 1 of the intermediaries step
    # Intermediaries: an agency declares for itself only, is evaluated, and loses its tier after a false report.
    assert "(of the events stored, 3 came from the intermediaries step)" in out
    assert "it tries to declare for another agency: 403 Event about another subject than the source" in out
    assert "check_selection: ALLOW  tier A (green_channel, procurement_preference)" in out
    assert re.search(r"false report .*check_selection: DENY   tier D \(.*access_restriction\); BLACK_LIST", out), out
    assert re.search(r"the practitioner 320703\*{8}5843 陈\*\*: black list, tier D: practice_ban", out), out
    assert "its practitioners masked: 刘** (CHS-0702), 陈** (ZXGCS-0701)" in out
    assert "422 rejected at /data/merchant/id" in out
    assert "401 No valid signature" in out
    assert "401 Timestamp outside the tolerance window" in out
    assert "409 Webhook id already used with another body" in out
    assert "duplicate: stored once" in out
    assert "resident id in it: no" in out
    assert re.search(r"91320706MA1Y2N6Q47 \S+\s+black grade D\s+\(.*FAKE_ORDERS_MASS", out), out
    assert re.search(r"320706\*{8}4597 王\*\*\s+none", out), out
    assert "no: raw bodies are sealed" in out
    # A merchant moves onto the black list and the marketplace refuses it; its list mirror answers offline.
    assert re.search(r"91320703MA20B8C33E 连云区水晶饰品商行: ALLOW ", out), out
    assert "screened again: DENY   (black list, grade D: LISTING_COUNTERFEIT" in out
    assert "→ the marketplace refuses the store; measures: refuse_onboarding" in out
    assert re.search(r"synced \d+ change-feed entries into lists\.db", out), out
    # Notifications: the marketplace subscribes; the counterfeit report reaches its endpoint, signed.
    assert re.search(r"subscription sub_[a-z2-7]{16}: its secret whsec_…", out), out
    assert (
        "the endpoint received list.changed #1, signature verified (NotificationReceiver): 91320706MA27H5Q841 → black"
        in out
    )
    assert re.search(r"latency from the gateway's 202 to the endpoint: \d+ ms", out), out
    # Due process: a penalty objected to is disputed, then corrected when the objection is upheld.
    assert re.search(r"91320705MA21Q7K346 新浦区茶叶小铺: DENY .*PENALTY_SERIOUS\), record rec_[0-9a-f]{24}", out), out
    assert re.search(r"files objection OBJ-2026-0007: screened again: DENY .*disputed: true", out), out
    assert re.search(r"follows its case: open; the regulator must reply by \d{4}-\d{2}-\d{2} \(30 days", out), out
    assert re.search(r"correction was published at \d{4}-\d{2}-\d{2}T[\d:]+Z .*due by \d{4}-\d{2}-\d{2}", out), out
    assert "the record is corrected; screened again: ALLOW  (none list" in out
    assert re.search(r"it was due by \d{4}-\d{2}-\d{2} \(3 working days", out), out
    assert "Client.check_onboarding → TransportError (no answer, and never a default allow)" in out
    assert re.search(r"91320703MA20B8C33E 连云区水晶饰品商行\s+DENY\s+\(black list.*\)\s+in \d+ µs", out), out
    assert re.search(r"91320700MA1P4K7L4R \S+\s+ALLOW\s+\(none list", out), out
    assert re.search(r"320706\*{8}4597 \(a person\)\s+ALLOW", out), out
    assert "resident id appear in the mirror file? no" in out
    assert re.search(r"91320703MA20B8C33E \S+\s+black grade D\s+\(LISTING_COUNTERFEIT", out), out
    # Attestations: a signed proof of the check, verified offline once the gateway has stopped; a changed byte is not.
    assert re.search(r"91320703MA20B8C33E: a compact JWS of \d+ characters \(EdDSA, Ed25519\)", out), out
    assert re.search(r"→ valid: 91320703MA20B8C33E 连云区水晶饰品商行, list black, grade D, signed for key_", out), out
    assert "one character of the payload changed → refused: The attestation's signature does not match" in out
    # The public disclosure site: the shop found by part of its name, its page as text with the black-list banner and
    # the reasons' Chinese labels; the sole trader's resident id nowhere.
    assert "searching 速达 on http://127.0.0.1:" in out and "finds 海州区速达数码店: yes" in out
    assert re.search(r"http://127\.0\.0\.1:\d+/public/subjects/uscc/91320706MA1Y2N6Q47\n", out), out
    assert "该主体已列入严重失信主体名单" in out and "大规模刷单炒信" in out and "受到严重行政处罚" in out
    assert "320706198605174597" not in out
