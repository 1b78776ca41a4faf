"""The key contract's id encoding: its fast path answers as the escape table does, and is reversible."""

from hypothesis import given
from hypothesis import strategies as st

from streams import keys

IDS = st.text(alphabet=st.sampled_from("ab-_.9:%{}*?[]\\ 中😀"), max_size=12) | st.text(max_size=12)


@given(IDS)
def test_encode_is_the_escape_table_and_decode_reverses_it(identifier: str) -> None:
    assert keys.encode(identifier) == identifier.translate(keys._TABLE)
    assert keys.decode(keys.encode(identifier)) == identifier
    assert ":" not in keys.encode(identifier) and "{" not in keys.encode(identifier)
