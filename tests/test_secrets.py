"""The shared list of secret patterns (instrument/_secrets.py), tested directly.

Tables of inputs and what the module's docstrings promise for them: the key rule
on every key style, secret values in text in each form, bearer/basic credentials,
each token family, card numbers, and what must stay as it is. Known places where
the code and its documentation disagree are ``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import json

import pytest

from promkit.instrument import _secrets
from promkit.instrument._secrets import (
    CARD_MARK,
    SECRET_MARK,
    contains_secret,
    is_secret_key,
    key_words,
    normalise_key,
    redact_card_numbers,
    redact_secrets,
)


def luhn_valid(digits: str) -> bool:
    """An independent Luhn check, to state each card case's premise."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


# ---------------------------------------------------------------------------- key names

@pytest.mark.parametrize("key, expected", [
    # the docstring's own examples
    ("accessToken", "access_token"),
    ("X-Api-Key", "x_api_key"),
    ("APIKey", "api_key"),
    ("DB_PASSWORD", "db_password"),
    # camelCase, acronyms, separators, case and surrounding space
    ("clientSecret", "client_secret"),
    ("OAuthToken", "o_auth_token"),
    ("getHTTPResponse", "get_http_response"),
    ("HTTPAuthorization", "http_authorization"),
    ("key2Value", "key2_value"),
    ("spring.datasource.password", "spring_datasource_password"),
    ("a..b--c", "a_b_c"),
    ("  Api Key  ", "api_key"),
    ("__private__", "private"),
    ("ÜberToken", "ber_token"),  # non-ASCII letters become separators
    ("", ""),
    ("-._", ""),
])
def test_normalise_key(key: str, expected: str) -> None:
    assert normalise_key(key) == expected


@pytest.mark.parametrize("key, expected", [
    ("aws_secret_access_key", ["aws", "secret", "access", "key"]),
    ("X-Api-Key", ["x", "api", "key"]),
    ("dbpassword", ["dbpassword"]),
    ("a__b", ["a", "b"]),
    ("", []),
    ("__", []),
])
def test_key_words(key: str, expected: list[str]) -> None:
    assert key_words(key) == expected


SECRET_KEYS = [
    # the styles the docstrings name
    "DB_PASSWORD", "aws_secret_access_key", "accessToken", "clientSecret", "secret_key",
    "X-Api-Key", "dbpassword", "api_key", "APIKey", "apikey",
    # each last word on the list
    "password", "passwd", "pwd", "passphrase", "secret", "token", "Authorization",
    "credential", "credentials", "cookie", "signature", "sig",
    # in other keys and styles
    "Proxy-Authorization", "Set-Cookie", "x-amz-signature", "refresh-token", "csrf_token",
    "OAuthToken", "API-KEY", "TOKEN", "spring.datasource.password", " password ",
    # glued to another word
    "clientsecret", "accesstoken", "mypassphrase", "rootpasswd", "stripeapikey",
    # "<qualifier> key" for each qualifier
    "access_key", "privateKey", "signing_key", "encryption_key", "client_key",
    "master_key", "auth_key", "session_key",
]
HARMLESS_KEYS = [
    # the docstring's own examples: a secret word followed by another word
    "token_count", "password_policy", "secret_name", "tokens",
    "token_type", "secretKeyRef", "credentials_file", "pwdHash", "sig_alg", "api_key_id",
    # plurals and longer words that merely contain a secret word
    "passwords", "secrets", "signatures", "authorizations", "tokenizer", "secretive",
    "sigma", "apikeys",
    # "key" alone or after a word that is not a qualifier
    "key", "keyboard", "monkey", "hotkey", "turnkey", "cache_key", "public_key",
    "primary_key", "foreign_key", "sort_key",
    # nothing to judge
    "", "___",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_is_secret_key_on_every_style(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", HARMLESS_KEYS)
def test_is_secret_key_keeps_keys_that_describe_something_else(key: str) -> None:
    assert not is_secret_key(key)


# ---------------------------------------------------------------------------- values in text

# The four forms of the module docstring, plus k = v and JSON logged inside a JSON string.
KV_FORMS = {
    "k=v": lambda key: f"cfg {key}=v4lue-1 next",
    "k = v": lambda key: f"cfg {key} = v4lue-1 next",
    "k: v": lambda key: f"cfg {key}: v4lue-1 next",
    "json": lambda key: json.dumps({key: "v4lue-1", "n": 1}),
    "repr": lambda key: repr({key: "v4lue-1", "n": 1}),
    "escaped json": lambda key: json.dumps(json.dumps({key: "v4lue-1"})),
}
# Keys with no space here; two-word keys with one ("API Key") have a test of their own.
TEXT_KEYS = [key for key in SECRET_KEYS if " " not in key]


@pytest.mark.parametrize("key", TEXT_KEYS)
def test_secret_key_values_are_redacted_in_every_form(key: str) -> None:
    for form, make in KV_FORMS.items():
        text = make(key)
        # the value only, nothing around it
        assert redact_secrets(text) == text.replace("v4lue-1", SECRET_MARK), form


@pytest.mark.parametrize("key", [key for key in HARMLESS_KEYS if key.strip("_")])
def test_harmless_key_values_are_kept_in_every_form(key: str) -> None:
    for form, make in KV_FORMS.items():
        text = make(key)
        assert redact_secrets(text) == text, form


@pytest.mark.parametrize("form", list(KV_FORMS))
@pytest.mark.parametrize("key", ["API Key", "Secret Key", "private key", "aws secret access key"])
def test_two_word_keys_with_a_space_are_redacted_in_every_form(key: str, form: str) -> None:
    # The word before the key's last one counts across a single space ("<word> key").
    assert is_secret_key(key)
    text = KV_FORMS[form](key)
    assert redact_secrets(text) == text.replace("v4lue-1", SECRET_MARK)


@pytest.mark.parametrize("text", ["my key: v4lue-1", "public key = v4lue-1", '{"cache key": 1}',
                                  "the monkey: v4lue-1"])
def test_a_word_before_a_harmless_key_keeps_it_harmless(text: str) -> None:
    assert redact_secrets(text) == text


@pytest.mark.parametrize("text, expected", [
    # separators, spacing and case
    ("password=hunter2&user=x", f"password={SECRET_MARK}&user=x"),
    ("token:abc", f"token:{SECRET_MARK}"),
    ("token\t=\tabc", f"token\t=\t{SECRET_MARK}"),
    ("Password: X", f"Password: {SECRET_MARK}"),
    # unquoted values end at a space or delimiter
    ("token=abc,next", f"token={SECRET_MARK},next"),
    ("token=abc;next", f"token={SECRET_MARK};next"),
    ("x-api-key=abc<br>", f"x-api-key={SECRET_MARK}<br>"),
    ("Password=abc def", f"Password={SECRET_MARK} def"),
    ("url /cb?api_key=abc&x=1", f"url /cb?api_key={SECRET_MARK}&x=1"),
    # quoted values are replaced whole, escapes included
    ("password = 'abc def' tail", f"password = '{SECRET_MARK}' tail"),
    ('secret="a\\"b" next', f'secret="{SECRET_MARK}" next'),
    ("{'password': 'it\\'s'}", f"{{'password': '{SECRET_MARK}'}}"),
    ("password: 'unterminated", f"password: '{SECRET_MARK}"),
    # bytes / raw / unicode string prefixes in a repr
    ("{'password': b'hunter2'}", f"{{'password': b'{SECRET_MARK}'}}"),
    ("{'password': r'a\\b'}", f"{{'password': r'{SECRET_MARK}'}}"),
    # every occurrence, on every line
    ("password=a pwd=b passphrase=c",
     f"password={SECRET_MARK} pwd={SECRET_MARK} passphrase={SECRET_MARK}"),
    ("password=a\ntoken=b", f"password={SECRET_MARK}\ntoken={SECRET_MARK}"),
    # a long key is still judged by its last words
    ("a" * 80 + "_password=x", "a" * 80 + f"_password={SECRET_MARK}"),
    ("a" * 80 + "_api_key=x", "a" * 80 + f"_api_key={SECRET_MARK}"),
    # nothing to redact: empty values, nested objects (left to their own keys)
    ("password=", "password="),
    ('password=""', 'password=""'),
    ("password={'a': 1}", "password={'a': 1}"),
    ("password={'token': 'x'}", f"password={{'token': '{SECRET_MARK}'}}"),
])
def test_redact_secrets_key_value_details(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected


@pytest.mark.parametrize("text, expected", [
    # a closing bracket the value did not open belongs to what holds it
    ('{"password": 12345}', f'{{"password": {SECRET_MARK}}}'),
    ('{"pin": 1, "token": null}', f'{{"pin": 1, "token": {SECRET_MARK}}}'),
    ("Creds(user=ann, token=abc)", f"Creds(user=ann, token={SECRET_MARK})"),
    ("[token=abc]", f"[token={SECRET_MARK}]"),
    ("f(g(token=abc))", f"f(g(token={SECRET_MARK}))"),
    # one the value opened is part of it
    ("token=f(x) next", f"token={SECRET_MARK} next"),
    ("token=a]b next", f"token={SECRET_MARK} next"),
])
def test_an_unquoted_value_ends_before_a_closing_bracket(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {SECRET_MARK}"),
    ("auth Bearer abc/d+e=", f"auth Bearer {SECRET_MARK}"),
    ("BEARER abc", f"BEARER {SECRET_MARK}"),
    ("token=Bearer abc", f"token=Bearer {SECRET_MARK}"),
    # basic: base64 of user:password, padded or not
    ("header Basic dXNlcjpwYXNzd29yZA== x", f"header Basic {SECRET_MARK} x"),
    ("Proxy-Authorization: Basic dXNlcjpwYXNzd29yZA==",
     f"Proxy-Authorization: Basic {SECRET_MARK}"),
    ("basic dXNlcjpwYXNzd29yZA", f"basic {SECRET_MARK}"),
    # kept: prose, base64 without "user:", too short, the word alone
    ("Basic usage of the API", "Basic usage of the API"),
    ("basic dXNlcm5hbWU=", "basic dXNlcm5hbWU="),  # "username": no colon
    ("Basic abc", "Basic abc"),
    ("Bearer", "Bearer"),
    ("card bearer", "card bearer"),
])
def test_bearer_and_basic_credentials(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected


@pytest.mark.xfail(strict=True, reason=(
    "_BEARER takes any word after 'bearer' (Basic checks for base64 user:password), so "
    "prose is marked"))
def test_bearer_in_prose_is_kept() -> None:
    assert redact_secrets("the bearer of bad news") == "the bearer of bad news"


TOKENS = {
    "sk-": "sk-abcdefghijklmnop1234",
    "sk-proj-": "sk-proj-abcdefghijklmnopqrstuvwx",
    "sk_live_": "sk_live_abcdefghijklmnop1234",
    "sk_test_": "sk_test_abcdefghijklmnop",
    "rk_live_": "rk_live_abcdefghijklmnop",
    "ghp_": "ghp_abcdefghijklmnopqrstuvwxyz0123",
    "gho_": "gho_abcdefghijklmnopqrst",
    "ghu_": "ghu_abcdefghijklmnopqrst",
    "ghs_": "ghs_abcdefghijklmnopqrst",
    "ghr_": "ghr_abcdefghijklmnopqrst",
    "github_pat_": "github_pat_11ABCDEFG0123456789_abcdefghij",
    "xoxa-": "xoxa-1234567890",
    "xoxb-": "xoxb-1234567890-abcdefghij",
    "xoxp-": "xoxp-1234567890-abcdef",
    "xoxr-": "xoxr-1234567890",
    "xoxs-": "xoxs-1234567890",
    "AKIA": "AKIAIOSFODNN7EXAMPLE",
    "ASIA": "ASIA1234567890ABCDEF",
    "AIza": "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
    "JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature",
    "JWT, empty signature": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.",
}


@pytest.mark.parametrize("family", TOKENS)
def test_each_token_family_is_redacted(family: str) -> None:
    for around in ["{}", "key {} used", "({})", "'{}'", "x.{}", "url={}&a=1"]:
        assert redact_secrets(around.format(TOKENS[family])) == around.format(SECRET_MARK)


@pytest.mark.parametrize("text", [
    # too short for the family
    "sk-abcdefghijklmno", "sk_test_abcdefghijklmno", "ghp_abcdefghijklmnopqrs",
    "github_pat_abcdefghijklmnopqrs", "xoxb-123456789", "AKIAIOSFODNN7EXAMPL",
    "AIzaSyA-abcdefghijklmnopqrstuvwxyz0123",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0",  # a JWT has three parts
    # not a family: wrong letter or environment, lower-case AWS
    "pk_live_abcdefghijklmnop1234", "sk_prod_abcdefghijklmnop", "ghx_abcdefghijklmnopqrstuvwxyz",
    "xoxz-1234567890-abcdef", "AKIAiosfodnn7example",
    # glued to a letter, digit, "_" or "-": part of another word
    "task-abcdefghijklmnopqrstu finished", "mask-abcdefghijklmnopqrstu",
    "my_ghp_abcdefghijklmnopqrstuvwxyz", "-ghp_abcdefghijklmnopqrstuvwxyz",
    "xAKIAIOSFODNN7EXAMPLE", "9AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
    "keyeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "rsk_live_abcdefghijklmnop1234",
])
def test_token_lookalikes_are_kept(text: str) -> None:
    assert redact_secrets(text) == text


ORDINARY_TEXT = [
    "hello world, nothing here: ok",
    "job_created",
    "the secret of success",
    "my token is here",
    "error: token expired",
    "note: secret",
    "see key: points",
    "keynote: x",
    "sigkill: 9",
    "Basic usage of the API",
    "version 1.2.3: ok",
    "time: 12:30:45",
    "at 21:03:07.123 the job took 1.5 s",
    "std::vector and Class::method",
    "ratio=0.5 key_count=3 prompt_tokens=120",
    "client 10.0.0.1:8080",  # IPs are the log layer's, not this list's
    "GET /items/{item_id} 200",
    "total: 1234.56 EUR, order 1733461878123",
    # UUIDs and hex IDs
    "request 0c4f7c2e-8a4b-4a51-9b1e-3f2d5c6a7b8c done",
    "550e8400-e29b-41d4-a716-446655440000",
    "id 0c4f7c2e-8a4b-4a51-4111-111111111111",
    "commit 7d50ea2f1c3b4a5e6d7c8b9a0f1e2d3c4b5a6978",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "trace e7d1c2a0f8b94c3d9e6f1a2b3c4d5e6f span 00f067aa0ba902b7",
    "",
]


@pytest.mark.parametrize("text", ORDINARY_TEXT)
def test_ordinary_text_uuids_and_hex_ids_pass_unchanged(text: str) -> None:
    assert redact_secrets(text) == text
    assert redact_card_numbers(text) == text
    assert not contains_secret(text)


def test_redaction_is_stable_and_the_markers_are_not_secrets() -> None:
    for marker in (SECRET_MARK, CARD_MARK):
        assert not contains_secret(marker)
    for text in [KV_FORMS[form](key) for form in KV_FORMS for key in TEXT_KEYS]:
        once = redact_secrets(text)
        assert redact_secrets(once) == once


def test_the_key_cache_starts_over_when_full_with_the_same_answers() -> None:
    limit = _secrets._KEY_CACHE_LIMIT
    for n in range(limit + 10):
        assert redact_secrets(f"k{n}_token=v") == f"k{n}_token={SECRET_MARK}"
        assert redact_secrets(f"k{n}_token_count=v") == f"k{n}_token_count=v"
    assert len(_secrets._KEY_CACHE) <= limit


# ---------------------------------------------------------------------------- card numbers

CARDS = [
    "4111111111111111",  # Visa, 16
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "4111 1111-1111 1111",  # spaces and dashes mixed
    "5555 5555 5555 4444",  # Mastercard
    "2221000000000009",  # Mastercard 2-series
    "378282246310005",  # Amex, 15
    "3782 822463 10005",
    "30569309025904",  # Diners, 14
    "3530111333300000",  # JCB
    "6011111111111117",  # Discover
    "4222222222222",  # 13 digits
    "6234567890123456780",  # 19 digits
]


@pytest.mark.parametrize("card", CARDS)
def test_luhn_valid_cards_are_redacted(card: str) -> None:
    digits = card.replace(" ", "").replace("-", "")
    assert 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits)
    for around in ["{}", "pay {} exp 12/26", "card={};", "({})", "amex {}.", '{{"pan": "{}"}}',
                   "{}\n", "ref-{}", "\ud800 {}"]:  # a lone surrogate takes the slow path
        text = around.format(card)
        expected = around.format(CARD_MARK)
        assert redact_card_numbers(text) == expected
        assert redact_secrets(text) == expected  # the copy inlined in redact_secrets agrees


@pytest.mark.parametrize("text, expected", [
    ("4111 1111 1111 1111 and 5555-5555-5555-4444", f"{CARD_MARK} and {CARD_MARK}"),
    ("4111111111111111 5555555555554444", f"{CARD_MARK} {CARD_MARK}"),
    # a run longer than 19 digits is searched among its space-separated groups
    ("qty 2 4111111111111111 2026", f"qty 2 {CARD_MARK} 2026"),
    ("2 4111 1111 1111 1111 2026", f"2 {CARD_MARK} 2026"),
    ("4111 1111 1111 1111 1111 1111", f"{CARD_MARK} 1111 1111"),
])
def test_cards_among_other_numbers(text: str, expected: str) -> None:
    assert redact_card_numbers(text) == expected
    assert redact_secrets(text) == expected


# Luhn-valid numbers kept by one of the other rules (the test checks the premise).
LUHN_VALID_NOT_CARDS = [
    # first digit outside 2-6: ms, us and ns Unix timestamps and others
    ("at 1733485274000 ms", "1733485274000"),
    ("at 1733485274000004 us", "1733485274000004"),
    ("at 1733485274000000000 ns", "1733485274000000000"),
    ("0111111111111119", "0111111111111119"),
    ("7111111111111114", "7111111111111114"),
    ("9111111111111110", "9111111111111110"),
    # too short or too long
    ("411111111117", "411111111117"),
    ("41111111111111111115", "41111111111111111115"),
    # glued to a letter, digit, "_" or dot
    ("sku A4111111111111111", "4111111111111111"),
    ("v2.4111111111111111", "4111111111111111"),
    ("3.4111111111111111", "4111111111111111"),
    ("4111111111111111x", "4111111111111111"),
    ("_4111111111111111", "4111111111111111"),
    ("4111111111111111_", "4111111111111111"),
    ("ü4111111111111111", "4111111111111111"),
    ("4111111111111111ü", "4111111111111111"),
    # part of a hex ID: dash-joined to 4 hex digits before, a letter or digit after
    ("id 0c4f7c2e-8a4b-4a51-4111-111111111111", "4111111111111111"),
    ("dead-4111111111111111", "4111111111111111"),
    ("4111111111111111-abcd", "4111111111111111"),
    # grouped by more than one space: the groups are separate numbers
    ("4111  1111 1111 1111", "4111111111111111"),
    # a run longer than 19 digits is split at spaces only: dash-joined groups are one ID
    ("tel 2-4111-1111-1111-1111-2026", "4111111111111111"),
    # digits other than ASCII are not card digits
    ("٤١١١١١١١١١١١١١١١",
     "4111111111111111"),
]


@pytest.mark.parametrize("text, digits", LUHN_VALID_NOT_CARDS)
def test_luhn_valid_numbers_that_are_not_cards_are_kept(text: str, digits: str) -> None:
    assert luhn_valid(digits), "premise: only the rule named in the table keeps it"
    assert redact_card_numbers(text) == text
    assert redact_secrets(text) == text


@pytest.mark.parametrize("text", [
    # Luhn fails: order numbers
    "order 4111 1111 1111 1112",
    "order 4111111111111112",
    # up to 19 digits joined by single spaces are one number, judged whole, though a
    # 16-digit span of it would pass
    "5 4111 1111 1111 1111",
    "4111 1111 1111 1111 9",
    "order 4111 1111 1111 1111 123",
    # a long run with no card among its groups
    "1 2 3 4 5 6 7 8 9 10 11 12 13 14",
])
def test_luhn_invalid_numbers_are_kept(text: str) -> None:
    assert not luhn_valid("".join(filter(str.isdigit, text)))
    assert redact_card_numbers(text) == text
    assert redact_secrets(text) == text


@pytest.mark.parametrize("text", ["password=hunter2", "Bearer abc", TOKENS["ghp_"]])
def test_redact_card_numbers_marks_cards_only(text: str) -> None:
    assert redact_card_numbers(text) == text
    assert redact_card_numbers(f"{text} 4111111111111111") == f"{text} {CARD_MARK}"


# ---------------------------------------------------------------------------- contains_secret

LABEL_VALUES_WITH_SECRETS = [
    *TOKENS.values(),
    "Bearer abc.def.ghi",
    "Basic dXNlcjpwYXNzd29yZA==",
    "password=hunter2",
    '{"clientSecret": "x"}',
    "X-Api-Key: abc",
    "4111 1111 1111 1111",
    "4111111111111111",
]


@pytest.mark.parametrize("value", LABEL_VALUES_WITH_SECRETS)
def test_contains_secret_detects_a_label_value_holding_any_of_the_list(value: str) -> None:
    for around in ["{}", "x {} y", "/v1/{}/items"]:
        text = around.format(value)
        assert contains_secret(text), around
        assert redact_secrets(text) != text


# Ordinary text is checked above (test_ordinary_text_uuids_and_hex_ids_pass_unchanged).
@pytest.mark.parametrize("value", [
    "/v1/items/{item_id}", "GET", "200", "token_count", "sk_test",
    "hunter2",  # a bare password has no key or shape to tell it by
    "order 4111 1111 1111 1112", "at 1733485274000 ms", "task-abcdefghijklmnopqrstu",
])
def test_contains_secret_is_false_on_harmless_label_values(value: str) -> None:
    assert not contains_secret(value)
    assert redact_secrets(value) == value
