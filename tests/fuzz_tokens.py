"""Bytes that broke an inbound reader once, and the shapes around them: the tokens both fuzzers
(tests/core/test_inbound_faults.py, and tests/trials/test_fuzz.py with more of its own) insert."""

TOKENS = [
    b'"',
    b'""',
    b"\x00",
    b"\r",
    b"\n",
    b"\r\n",
    b",",
    b";",
    b"\t",
    b"\xff",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"999999999999",
    b"-1",
    b"1e400",
    b"\xef\xbc\x94",
    b"=1+1",
    b"WEB-",
    b" ",
    b"2147483648",
    b"#passerelle ",
]
