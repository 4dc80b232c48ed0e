"""CLIPBPETokenizer must give exactly open_clip's ids, on both code paths."""
import html
import importlib
import random

import ftfy
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmclip.models.tokenizers import CLIPBPETokenizer, tokenize
from mmclip.models.tokenizers.bpe import DEFAULT_BPE_PATH, load_merges
from mmclip.models.tokenizers.clip_tokenizer import (clean_text,
                                                     is_fast_path_text)
from mmclip.registry import TOKENIZER

open_clip_tokenizer = importlib.import_module('open_clip.tokenizer')

CORPUS = [
    # plain captions, punctuation, numbers, contractions, caps
    'a photo of a cat',
    'A photo of a red car parked near the old bridge.',
    'THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG',
    "it's a dog's life, isn't it? they're here, we've gone, I'm ok, "
    "you'll see, he'd go",
    "IT'S LOUD; DON'T SHOUT",
    "rock 'n' roll '' 'ss ''s '''t",
    'price: $19.99 (was $25), 50% off -- 3/4 of 1,000,000 items #1 @home',
    'e-mail: someone@example.com, url: https://x.y/z?a=1',
    'snake_case_name and camelCaseName and dotted.name',
    '12345 67.89 1st 2nd 3rd 4th 2019-01-01 10:30pm',
    '!!!??? ... --- ((())) [[]] {{}} *** ~~~ ^^^ |||',
    '"double" \'single\' `back` \\back\\slash/',
    # unicode
    'café naïve résumé Ångström façade Ærø', 'Straße ẞ İstanbul ǅ',
    '東京タワーの写真', '北京的一只猫', '한국어 문장입니다', 'صورة قطة على الطاولة',
    'Фото кошки на столе', 'Ελληνικά γράμματα', 'हिन्दी वाक्य', 'ไทย ภาษา',
    '١٢٣ ٤٥٦ ①②③ ½ ²³ Ⅻ', 'ﬁne ﬂower ＬＯＵＤ　ＮＯＩＳＥＳ',
    # emoji: plain, ZWJ sequence, skin tone, flags, keycap
    'a dog 🐶 and a cat 🐱', '👨‍👩‍👧‍👦 family', '👍🏽 ok', '🇫🇷🇯🇵 flags',
    '1️⃣ keycap', '🏳️‍🌈 rainbow',
    # HTML entities, also double-escaped and malformed
    'Tom &amp; Jerry', 'a &amp;lt;b&amp;gt; tag', 'it&#39;s &quot;fine&quot;',
    'non&nbsp;breaking&nbsp;space', '&lt;div&gt;hi&lt;/div&gt;',
    '&#x1F600; &#128512; &copy; &hellip;', 'AT&T & M&M, 5 & 6, &',
    '&amp', '&unknown; & &;', '<b>bold</b> &amp; <i>it</i>',
    # mojibake and curly quotes
    'cafÃ©', 'Itâ€™s here', 'â€œquotedâ€\x9d', 'Ã¼ber', 'â€"dash',
    '“curly” ‘single’ — en–dash …', 'Â\xa0nbsp',
    # whitespace and control characters
    'tabs\tand\nnewlines\r\nand\rcarriage', '  leading and trailing  ',
    'form\x0cfeed vertical\x0btab', 'null\x00byte bell\x07 del\x7f',
    'unit\x1fsep\x1crecord\x1d\x1e', 'nbsp\xa0here and\u2028there\u2029x',
    'zero\u200bwidth joiner\u200d', 'bom\ufeffinside', 'soft\xadhyphen',
    '\x1b[31mred\x1b[0m text', '\x1b[1;32mbold green\x1b[m', 'lone \x1b esc',
    '\x85next line', 'c1 \x80\x81\x9f controls',
    # empty, whitespace only
    '', ' ', '\t\n\r ', '\x00',
    # literal special tokens (new and OpenAI's old spelling)
    '<start_of_text>', 'a <end_of_text> b', '<START_OF_TEXT>x<End_Of_Text>',
    '<|startoftext|>hello<|endoftext|>', '<<start_of_text>>',
    'x<start_of_text>y', '</w> not a marker',
    # case-folding corners of the IGNORECASE pattern (long s, Kelvin sign,
    # a combining mark that folds to a letter)
    '<ſtart_of_text>', "it'ſ", 'KK', 'aͅb',
]


@pytest.fixture(scope='module')
def ref():
    """open_clip's reference tokenizer (default clean='lower')."""
    return open_clip_tokenizer.SimpleTokenizer()


@pytest.fixture(scope='module')
def tok():
    return CLIPBPETokenizer()


def test_golden_ids(tok):
    # Fixed ids (from open_clip 3.3) so the ids are checked even where
    # open_clip is not installed.
    assert tok.encode('a photo of a cat') == [320, 1125, 539, 320, 2368]
    assert tok.encode("A Dog's toy, 2 balls!") == [
        320, 1929, 568, 5988, 267, 273, 6927, 256
    ]
    assert tok.encode('café &amp; naïve 東京 🚗') == [
        15304, 261, 1097, 35689, 563, 48338, 21078, 361, 22783
    ]
    assert tok.encode('<start_of_text>x<|endoftext|>') == [
        49406, 343, 27, 347, 40786, 4160, 91, 285
    ]


def test_properties(tok):
    assert tok.vocab_size == 49408
    assert (tok.sot_token_id, tok.eot_token_id, tok.pad_token_id) == (49406,
                                                                      49407, 0)


@pytest.mark.parametrize('text', CORPUS)
def test_encode_matches_open_clip(tok, ref, text):
    assert tok.encode(text) == ref.encode(text)


def test_call_matches_open_clip(tok, ref):
    texts = CORPUS + [' '.join(CORPUS)]  # the last one needs truncation
    expected = ref(texts)
    out = tok(texts, truncate=True)
    assert out.dtype == torch.long and out.shape == (len(texts), 77)
    assert torch.equal(out, expected)
    assert torch.equal(tok('a photo of a cat'), ref('a photo of a cat'))
    assert tok([]).shape == (0, 77)


def test_numpy_output(tok, ref):
    """return_tensors='np': the same ids as an int64 array (the ONNX
    Runtime scorer's path, which has no torch); decode takes arrays."""
    texts = CORPUS[:8] + [' '.join(CORPUS)]
    out = tok(texts, truncate=True, return_tensors='np')
    assert isinstance(out, np.ndarray) and out.dtype == np.int64
    np.testing.assert_array_equal(out, ref(texts).numpy())
    np.testing.assert_array_equal(
        tokenize('a cat', context_length=8, return_tensors='np'),
        ref('a cat', context_length=8).numpy())
    assert tok.decode(out[0], skip_special_tokens=True) == tok.decode(
        tok.encode(texts[0]))
    with pytest.raises(ValueError, match="'np'"):
        tok('a cat', return_tensors='tf')


@pytest.mark.parametrize('context_length', [1, 2, 3, 8, 77, 100])
def test_context_length_and_truncation(tok, ref, context_length):
    texts = ['', 'a', 'a photo of a cat', 'one two three four five six seven']
    expected = ref(texts, context_length=context_length)
    out = tok(texts, context_length=context_length, truncate=True)
    assert torch.equal(out, expected)


def test_too_long_raises(tok):
    text = 'word ' * 75  # 75 tokens + SOT + EOT = 77: fits exactly
    assert tok(text)[0, -1].item() == tok.eot_token_id
    long_text = 'lorem ipsum ' * 40
    with pytest.raises(ValueError) as err:
        tok(['short', long_text])
    msg = str(err.value)
    assert "'lorem ipsum lorem" in msg and '...' in msg
    assert f'{len(tok.encode(long_text)) + 2} tokens' in msg
    assert 'truncate=True' in msg
    assert 'shorten it' in msg and long_text not in msg
    # the constructor default and the call argument both control it
    assert tok(long_text, truncate=True)[0, -1].item() == tok.eot_token_id
    lenient = CLIPBPETokenizer(truncate=True, context_length=10)
    assert lenient(long_text).shape == (1, 10)
    with pytest.raises(ValueError):
        lenient(long_text, truncate=False)


@pytest.mark.parametrize(
    'text, fast',
    [('a photo of a cat', True), ('tab\tnl\nff\x0ccr\r', True),
     ('<b>x</b>', True), ('a & b', False), ('&amp;', False),
     ('\x1b[31mred', False), ('v\x0btab', False), ('del\x7f', False),
     ('nul\x00', False), ('caf\xe9', False), ('\x1fus', False)])
def test_fast_path_selection(text, fast):
    assert is_fast_path_text(text) is fast


@pytest.mark.parametrize('text', [t for t in CORPUS if is_fast_path_text(t)])
def test_fast_path_equals_slow_path(tok, text):
    assert tok.encode(text) == tok._encode_slow(text)


_FAST_ALPHABET = st.sampled_from(
    [chr(c) for c in range(0x20, 0x7f) if chr(c) != '&'] +
    ['\t', '\n', '\x0c', '\r', "'s", "'t", "'re", '<start_of_text>'])


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_FAST_ALPHABET, max_size=40).map(''.join))
def test_fast_path_property(tok, ref, text):
    """On fast-path text ftfy + html are no-ops and all paths agree."""
    assert is_fast_path_text(text)
    assert html.unescape(html.unescape(ftfy.fix_text(text))).split() == \
        text.split()
    assert clean_text(text) == ' '.join(text.split()).lower()
    assert tok.encode(text) == tok._encode_slow(text) == ref.encode(text)


_ASCII_CONTROL_MIX = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x7f), max_size=40)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(_ASCII_CONTROL_MIX, st.text(max_size=30)))
def test_random_text_matches_open_clip(tok, ref, text):
    assert tok.encode(text) == ref.encode(text)


_FRAGMENTS = [
    'a', 'Photo', 'of', 'CAT', "'s", "'T", "'re", "'ll", "n't", ' ', '  ',
    '\t', '\n', '\r', '\x0b', '\x0c', '\x00', '\x1b', '\x1b[31m', '\x1b[0m',
    '\x7f', '\x1f', '&', '&amp;', '&amp;lt;', '&#39;', '&nbsp;', '&lt;', '<',
    '>', '</w>', '<start_of_text>', '<end_of_text>', '<|endoftext|>', '1',
    '2024', '.', ',', '!?', '-', '_', 'é', 'Ã©', 'â€™', '’', '“', '…', 'ß',
    'İ', 'ﬁ', 'Ｌ', '東京', 'كتاب', 'кот', '🐶', '👨‍👩‍👧', '🇯🇵', '\u200b',
    '\xa0', '\x85', '\u2028', '\ufeff', '\u0345', 'ſ', 'K'
]


def test_seeded_fragment_fuzz(tok, ref):
    """Random mixes of the fragments that trip cleaning and splitting."""
    rng = random.Random(0)
    texts = [
        ''.join(rng.choices(_FRAGMENTS, k=rng.randint(0, 12)))
        for _ in range(1500)
    ]
    for text in texts:
        assert tok.encode(text) == ref.encode(text), repr(text)
    assert torch.equal(tok(texts, truncate=True), ref(texts))


def test_small_caches_stay_correct(ref):
    small = CLIPBPETokenizer(cache_size=3)
    texts = CORPUS[:20] * 2
    for text in texts:
        assert small.encode(text) == ref.encode(text)
    assert len(small._word_cache) <= 3 and len(small._bpe._cache) <= 3


def test_decode(tok, ref):
    text = 'a photo of a red car parked near the old bridge'
    ids = tok.encode(text)
    assert tok.decode(ids) == ref.decode(ids) == text + ' '
    row = tok(text)[0]
    assert tok.decode(row, skip_special_tokens=True) == text + ' '
    mixed = tok.encode('Café &amp; 東京 🐶!')
    assert tok.decode(mixed) == ref.decode(mixed)


def test_registry_build():
    built = TOKENIZER.build(
        dict(type='CLIPBPETokenizer', context_length=32, truncate=True))
    assert isinstance(built, CLIPBPETokenizer)
    assert built('a cat').shape == (1, 32)


def test_tokenize_function(ref):
    import mmclip
    assert mmclip.tokenize is tokenize
    texts = ['a photo of a cat', 'Tom &amp; Jerry']
    assert torch.equal(tokenize(texts), ref(texts))
    assert tokenize('x', context_length=5).shape == (1, 5)


def test_hf_merges_txt(tmp_path, tok, ref):
    # Write the bundled vocabulary as a HuggingFace merges.txt.
    merges = load_merges(DEFAULT_BPE_PATH)
    merges_file = tmp_path / 'merges.txt'
    merges_file.write_text(
        '#version: 0.2\n' + ''.join(f'{a} {b}\n' for a, b in merges),
        encoding='utf-8')
    hf = CLIPBPETokenizer(bpe_path=str(merges_file))
    assert hf.vocab_size == tok.vocab_size
    texts = CORPUS[:40]
    assert torch.equal(hf(texts), ref(texts))
