"""agent.graph.names.quote against its reference, urllib.parse.quote: IRIs
must not change because the writer no longer imports urllib.parse."""
import urllib.parse

from hypothesis import given, settings, strategies as st

from agent.graph import names

SAFES = ["/", "", "[],:"]


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.binary(max_size=64),
                 st.text(max_size=32).filter(lambda t: t.encode("utf-8", "ignore") == t.encode(
                     "utf-8", "surrogatepass"))),
       st.sampled_from(SAFES))
def test_quote_agrees_with_urllib(value, safe):
    assert names.quote(value, safe=safe) == urllib.parse.quote(value, safe=safe)


def test_quote_edge_cases():
    for value in (b"", b"/usr/lib/x86_64-linux-gnu/libc.so.6", b"/a b/%41/\xff\x00",
                  "h\u00f6st", "::1", b"~user/._-"):
        for safe in SAFES:
            assert names.quote(value, safe=safe) == urllib.parse.quote(value, safe=safe)
    # a lone surrogate is an error in both
    for fn in (names.quote, urllib.parse.quote):
        try:
            fn("\udcff", safe="")
        except UnicodeEncodeError:
            pass
        else:
            raise AssertionError(f"{fn} encoded a lone surrogate")
