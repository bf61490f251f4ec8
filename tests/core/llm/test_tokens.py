"""Token counts: OpenAI's encodings offline (checked against tiktoken's hashes), else an estimate."""
from __future__ import annotations

import inspect
import sys

from core.llm import tokens


def test_model_names_map_to_their_encodings():
    for model in ("gpt-4o-mini", "gpt-4.1", "gpt-5-mini", "o1", "o3-mini", "o4-mini", "openai/gpt-5"):
        assert tokens.encoding_name_for(model) == "o200k_base", model
    for model in ("gpt-4", "gpt-4-turbo", "gpt-3.5-turbo"):
        assert tokens.encoding_name_for(model) == "cl100k_base", model
    for model in ("qwen2.5-coder-7b", "llama-3.1-8b", "claude-sonnet-4", None, ""):
        assert tokens.encoding_name_for(model) is None


def test_both_encodings_load_offline_and_are_the_official_files():
    import tiktoken_ext.openai_public as public
    assert tokens.O200K_SHA256 in inspect.getsource(public.o200k_base)   # tiktoken's own hash
    assert tokens.available_encodings() == ["o200k_base", "cl100k_base"]
    assert tokens.encoding("o200k_base").n_vocab == 200019
    assert tokens.encoding("cl100k_base").n_vocab == 100277


def test_counts_match_an_independent_tokenizer():
    import quicktok
    text = inspect.getsource(tokens) + "\n日本語のテキスト, émigré, 12345678, \t\r\n  def f(x): return x**2"
    for name in ("o200k_base", "cl100k_base"):
        assert tokens.encoding(name).encode_ordinary(text) == quicktok.get_encoding(name).encode(text, disallowed_special=())
    c = tokens.count_text("hello world", "gpt-5-mini")
    assert (c.tokens, c.method, c.exact) == (2, "tiktoken:o200k_base", True)
    assert tokens.count_text("<|endoftext|>", "gpt-4o").tokens > 1    # ordinary text, not special


def test_messages_add_the_chat_format_overhead():
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "hello there", "name": "ann"},
                {"role": "user", "content": [{"type": "text", "text": "and more"}]}]
    enc = tokens.encoding("o200k_base")
    text = sum(len(enc.encode_ordinary(t)) for t in
               ("system", "You are terse.", "user", "hello there", "ann", "user", "and more"))
    c = tokens.count_messages(messages, "gpt-4o")
    assert c.tokens == text + 3 * 3 + 1 + 3 and c.method == "tiktoken:o200k_base"
    assert tokens.count_messages([{"role": "user", "content": "hello there"}], "gpt-4o").tokens == 9


def test_unknown_models_and_a_missing_tiktoken_fall_back_to_an_estimate(monkeypatch):
    c = tokens.count_text("x" * 41, "qwen2.5-coder")
    assert (c.tokens, c.method, c.exact) == (11, "estimate:chars/4", False)
    assert tokens.count_messages([{"role": "user", "content": "abcd" * 5}], "llama3").tokens == 3 + 3 + 1 + 5
    tokens.encoding.cache_clear()
    monkeypatch.setitem(sys.modules, "tiktoken", None)      # import tiktoken -> ImportError
    try:
        assert tokens.count_text("hello world", "gpt-4o").method == "estimate:chars/4"
    finally:
        monkeypatch.undo()
        tokens.encoding.cache_clear()
    assert tokens.count_text("hello world", "gpt-4o").method == "tiktoken:o200k_base"
