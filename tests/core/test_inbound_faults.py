"""Each inbound file is its own unit of failure (issue #12 item 1), at the parser: whatever bytes
a file holds, :func:`read_inbound` returns its rows (the bad ones rejected with file, line,
field and reason) or raises :class:`InboundError` naming the file; nothing else escapes. The
triggers found by fuzzing, one test each, then a hypothesis fuzz over the samples."""

from __future__ import annotations

import pytest

from passerelle import INCLUDE
from passerelle.core.inbound import CUSTOMERS, ORDERS, InboundError, read_inbound

SAMPLES = INCLUDE / "sample" / "inbound"
ORDERS_0900 = (SAMPLES / "orders_20261120_0900.csv").read_bytes()

HEADER = "shop_order_id,order_date,status,email,line_number,sku,quantity,unit_price_excl_vat,vat_rate,note"


def rows(*lines: str, end: str = "\n") -> bytes:
    return end.join([HEADER, *lines, ""]).encode("utf-8")


def test_excel_macintosh_csv_cr_line_ends_with_a_multi_line_note():
    """Excel's "CSV (Macintosh)" ends rows with CR and keeps LF inside a cell (Alt+Enter)."""
    data = rows(
        'W1,2026-11-20,paid,a@b.fr,1,ART-1,1,10,20,"Sonner\ndeux fois"',
        "W1,2026-11-20,paid,a@b.fr,2,ART-2,1,10,20,",
        "W2,2026-11-20,paid,c@d.fr,1,ART-3,2,5,20,ok",
        end="\r",
    )
    p = read_inbound("mac.csv", data)
    assert p.rejects.empty
    assert p.lines[["line", "sku"]].values.tolist() == [[2, "ART-1"], [4, "ART-2"], [5, "ART-3"]]
    assert p.orders.set_index("shop_order_id").loc["W1", "note"] == "Sonner\ndeux fois"


def test_nul_character_rejects_its_row_and_order_shown_as_an_escape():
    data = rows(
        "W1,2026-11-20,paid,a@b.fr,1,ART-1,1,10,20,ok",
        "W1,2026-11-20,paid,a@b.fr,2,ART-\x002,1,10,20,ok",
        "W2,2026-11-20,paid,c@d.fr,1,ART-3,2,5,20,ok",
    )
    p = read_inbound("nul.csv", data)
    assert p.orders.shop_order_id.tolist() == ["W2"]
    own = p.rejects[p.rejects.line == 3].iloc[0]
    assert (own.field, own.value) == ("sku", "ART-\\x002")
    assert own.reason.startswith("NUL character")
    assert "\x00" not in "".join(p.rejects.astype(str).values.ravel())  # storable in PostgreSQL
    assert p.rejects.set_index("line").loc[2, "reason"] == "order W1 has a rejected line 3"


def test_undecodable_byte_in_the_header_refuses_the_file_naming_line_1():
    data = ORDERS_0900.replace(b"sku", b"sk\xff", 1)  # the rest of the file is valid UTF-8
    with pytest.raises(
        InboundError,
        match=r"orders_h\.csv: line 1: the header holds undecodable bytes or NUL "
        r"characters \(column 8 'sk\\xff'\)",
    ):
        read_inbound("orders_h.csv", data)


def test_unbalanced_quote_in_the_last_row_rejects_that_row_only():
    data = rows(
        "W1,2026-11-20,paid,a@b.fr,1,ART-1,1,10,20,ok",
        'W2,2026-11-20,paid,c@d.fr,1,ART-3,2,5,20,"never closed',
        "and more text",
    )
    p = read_inbound("quote.csv", data)
    assert p.orders.shop_order_id.tolist() == ["W1"]
    assert p.rejects[["line", "field", "shop_order_id"]].values.tolist() == [[3, "", "W2"]]
    assert p.rejects.reason[0].startswith("unbalanced quote: a quoted cell opened on this line never closes")
    assert p.rejects.raw[0] == 'W2,2026-11-20,paid,c@d.fr,1,ART-3,2,5,20,"never closed\nand more text'


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_byte_order_mark_is_read(codec):
    p = read_inbound("orders_16.csv", ORDERS_0900.decode("utf-8").encode(codec))
    ref = read_inbound("orders_8.csv", ORDERS_0900)
    assert p.encoding == codec
    assert p.lines.equals(ref.lines) and p.rejects.empty


def test_amounts_over_10_8_are_rejected_not_sent_to_the_back_office():
    data = rows(
        "W1,2026-11-20,paid,a@b.fr,1,ART-1,1,123456789.00,20,big price",
        "W2,2026-11-20,paid,c@d.fr,1,ART-3,20000,9999.99,20,adds up too big",
        "W3,2026-11-20,paid,e@f.fr,1,ART-4,1,10,20,fine",
    )
    p = read_inbound("big.csv", data)
    assert p.orders.shop_order_id.tolist() == ["W3"]
    r = p.rejects
    assert ("unit_price_excl_vat", "too large: the back office takes numbers below 100,000,000") in set(
        zip(r.field, r.reason)
    )
    w2 = r[r.shop_order_id == "W2"]
    assert "total_incl_vat" in set(w2.field)
    assert any("works out at 239,999,760.00" in x for x in w2.reason)


def test_a_negative_huge_amount_is_refused_once_for_its_sign():
    """An amount that may not be negative, below -10^8: one reason on its field (negative), not a
    second one saying it is too large."""
    p = read_inbound("neg.csv", rows("W1,2026-11-20,paid,a@b.fr,1,ART-1,1,-123456789.00,20,"))
    r = p.rejects[p.rejects["field"] == "unit_price_excl_vat"]
    assert r[["line", "reason"]].values.tolist() == [[2, "must not be negative"]]


def test_line_number_over_2_31_is_rejected():
    data = rows(
        "W1,2026-11-20,paid,a@b.fr,2147483648,ART-1,1,10,20,", "W2,2026-11-20,paid,c@d.fr,2147483647,ART-3,1,10,20,"
    )
    p = read_inbound("ln.csv", data)
    assert p.orders.shop_order_id.tolist() == ["W2"]
    assert p.rejects[["line", "field", "value", "reason"]].values.tolist() == [
        [2, "line_number", "2147483648", "line_number must be at most 2147483647"]
    ]


def test_an_unforeseen_error_while_reading_becomes_an_inbound_error_naming_the_file(monkeypatch):
    import csv

    import passerelle.core.inbound as inbound

    def broken(*args, **kwargs):
        raise csv.Error("field larger than field limit (131072)")

    monkeypatch.setattr(inbound, "_read_table", broken)
    with pytest.raises(InboundError, match=r"^odd\.csv: cannot be read: Error: field larger than field limit"):
        read_inbound("odd.csv", ORDERS_0900)


# ------------------------------------------------------------------------------------------
# Fuzzing: mutated samples
# ------------------------------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")  # pinned in requirements.txt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_tokens import TOKENS

SAMPLE_BYTES = {p.name: p.read_bytes() for p in sorted(SAMPLES.rglob("*.csv"))}  # the shops' own exports too


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    """A sample, with a few bytes replaced, inserted or cut, or truncated, or re-encoded."""
    name = draw(st.sampled_from(sorted(SAMPLE_BYTES)))
    data = bytearray(SAMPLE_BYTES[name])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["insert", "replace", "delete", "truncate", "byte"]))
        token = draw(st.sampled_from(TOKENS))
        if how == "insert":
            data[at:at] = token
        elif how == "replace":
            data[at : at + len(token)] = token
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif how == "truncate":
            del data[at:]
        else:
            data[at : at + 1] = bytes([draw(st.integers(0, 255))])
    if draw(st.booleans()) and draw(st.booleans()):
        try:
            data = bytearray(bytes(data).decode("utf-8").encode(draw(st.sampled_from(["utf-16-le", "cp1252"]))))
        except UnicodeError:
            pass
    return name, bytes(data)


def account(parsed) -> None:
    """Every row read is integrated (an order line, a customer), rejected, or ignored (a
    customer written twice: one kept); no row both kept and rejected; a reason for each reject."""
    rejected = set(parsed.rejects["line"])
    assert parsed.rejects["reason"].map(lambda r: isinstance(r, str) and r != "").all()
    assert "\x00" not in "".join(parsed.rejects[["value", "reason", "raw"]].fillna("").values.ravel())
    if parsed.kind == CUSTOMERS:
        kept = set(parsed.customers["line"])
        assert not kept & rejected
        assert len(kept) + len(rejected) <= parsed.rows_read
    else:
        kept = set(parsed.lines["line"])
        assert not kept & rejected
        assert len(kept) + len(rejected) == parsed.rows_read, (parsed.kind == ORDERS, kept, rejected)


@settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(mutated())
def test_fuzzed_samples_raise_nothing_but_inbound_error_and_every_row_is_accounted_for(case):
    name, data = case
    try:
        parsed = read_inbound(name, data)
    except InboundError as exc:
        assert str(exc).startswith(name + ":")
        return
    account(parsed)


def test_a_file_with_too_many_columns_is_refused_naming_the_count():
    from passerelle.core.inbound import InboundError, read_inbound
    from passerelle.core.inbound.reading import MAX_COLUMNS

    header = ",".join(f"c{i}" for i in range(100_000))
    with pytest.raises(
        InboundError, match=rf"wide.csv: line 1: the header has 100000 columns; .* at most {MAX_COLUMNS}"
    ):
        read_inbound("wide.csv", (header + "\n" + "1," * 10 + "\n").encode())


def test_a_ten_megabyte_cell_is_refused_naming_its_line():
    from passerelle.core.inbound import InboundError, read_inbound

    sample = (SAMPLES / "orders_20261120_0900.csv").read_bytes().decode("utf-8").splitlines()
    huge = sample[:3] + [sample[3].replace(",", "," + "x" * 10_000_000 + " ", 1)] + sample[4:]
    data = "\n".join(huge).encode("utf-8")
    with pytest.raises(InboundError, match=r"big.csv: line \d+: a row of 10,0\d\d,\d\d\d characters"):
        read_inbound("big.csv", data)
