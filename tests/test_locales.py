"""Translations are data: every shipped locale has exactly English's keys, and English covers the code.

English (locales/en) is the source and the fallback. A node input, output, setting or
editor text without an English entry fails here, so a widget cannot land without its text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from packloader import load_pack, pack_import

PACK = Path(__file__).resolve().parents[1]
LOCALES = PACK / "locales"
FILES = ("main.json", "nodeDefs.json", "settings.json")
# The 14 locales the current editor (1.58.1) offers (its language list in i18n-*.js); the pack ships all of them.
EDITOR_LOCALES = ("en", "zh", "zh-TW", "ru", "ja", "ko", "fr", "es", "ar", "tr", "pt-BR", "fa", "he", "it")
SHIPPED = sorted(p.name for p in LOCALES.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def pack():
    return load_pack()


PLACEHOLDER = re.compile(r"\{(\w+)\}")


def flatten(tree, prefix=""):
    """Every leaf of a locale file as ``dotted.key -> text``."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def load(lang: str, name: str) -> dict:
    return flatten(json.loads((LOCALES / lang / name).read_text(encoding="utf-8")))


def test_the_pack_ships_exactly_the_editors_locales():
    assert SHIPPED == sorted(EDITOR_LOCALES)
    for lang in SHIPPED:
        assert sorted(p.name for p in (LOCALES / lang).iterdir()) == sorted(FILES), lang


@pytest.mark.parametrize("lang", [lang for lang in SHIPPED if lang != "en"])
@pytest.mark.parametrize("name", FILES)
def test_locale_has_exactly_englishs_keys_and_placeholders(lang, name):
    english, other = load("en", name), load(lang, name)
    assert sorted(set(english) - set(other)) == [], f"{lang}/{name} lacks these keys"
    assert sorted(set(other) - set(english)) == [], f"{lang}/{name} has keys English lacks"
    for key, text in english.items():
        if isinstance(text, str):
            assert set(PLACEHOLDER.findall(other[key])) == set(PLACEHOLDER.findall(text)), (lang, key)


@pytest.mark.parametrize("lang", SHIPPED)
def test_texts_are_safe_for_the_editors_message_compiler(lang):
    """vue-i18n reads | as plural and @ as a link; braces only around a placeholder."""
    for name in FILES:
        for key, text in load(lang, name).items():
            assert isinstance(text, str) and text.strip(), (lang, name, key)
            assert not re.search(r"[|@]", text), (lang, name, key)
            assert not re.search(r"[{}]", PLACEHOLDER.sub("", text)), (lang, name, key)


def test_english_covers_every_node_input_and_output(pack):
    english = json.loads((LOCALES / "en" / "nodeDefs.json").read_text(encoding="utf-8"))
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        entry = english[name]
        assert entry["display_name"] and entry["description"], name
        for section in ("required", "optional"):
            for input_name, spec in cls.INPUT_TYPES().get(section, {}).items():
                assert entry["inputs"][input_name]["name"], (name, input_name)
                assert entry["inputs"][input_name]["tooltip"], (name, input_name)
                if spec[1].get("control_after_generate"):
                    assert entry["inputs"]["control_after_generate"]["name"], name
        assert set(entry["outputs"]) == {str(i) for i in range(len(cls.RETURN_NAMES))}, name
        for index, output_name in enumerate(cls.RETURN_NAMES):
            assert entry["outputs"][str(index)]["name"] == output_name, (name, index)
            assert entry["outputs"][str(index)]["tooltip"], (name, index)
    assert set(english) == set(pack.NODE_CLASS_MAPPINGS), "a nodeDefs entry without a node, or a node without one"


def test_english_covers_every_setting_and_its_category():
    code = (PACK / "web" / "settings" / "settings.js").read_text(encoding="utf-8")
    ids = re.findall(r'panelEntry\("([\w.]+)"', code)
    assert ids, "no settings found: did panelEntry change?"
    settings = json.loads((LOCALES / "en" / "settings.json").read_text(encoding="utf-8"))
    assert set(settings) == {f"RunComfy_{i.replace('.', '_')}" for i in ids}
    categories = json.loads((LOCALES / "en" / "main.json").read_text(encoding="utf-8"))["settingsCategories"]
    assert {"RunComfy", *(i.split(".")[0] for i in ids)} <= set(categories)


def test_english_covers_every_text_the_web_code_and_the_server_look_up(pack):
    main = load("en", "main.json")
    used = set()
    for js in (PACK / "web").rglob("*.js"):
        used |= set(re.findall(r'\bt\("([\w.]+)"', js.read_text(encoding="utf-8")))
    assert used, "no t(...) calls found"
    used |= pack_import("nodes.user_language").keys_used()
    used |= {f"switching.report.{key}" for key in pack_import("switching.plan").REPORT_KEYS}  # words of the plan's report
    known = {key.removeprefix("runcomfyNanoBanana2.") for key in main if key.startswith("runcomfyNanoBanana2.")}
    assert sorted(used - known) == [], "texts the editor shows without an English entry"
    assert sorted(known - used) == [], "English entries no code uses"


def test_node_categories_are_covered(pack):
    categories = json.loads((LOCALES / "en" / "main.json").read_text(encoding="utf-8"))["nodeCategories"]
    for cls in pack.NODE_CLASS_MAPPINGS.values():
        assert set(cls.CATEGORY.split("/")) <= set(categories)


# Where the editor code puts a text on screen: each must come from t(), never an English literal.
SHOWN_LITERAL = re.compile(
    r"""(?:textContent\s*[:=]|placeholder\s*[:=]|setAttribute\("aria-label",|\bbutton\(|\bline\()\s*["'`]([^"'`]*)"""
)


def test_editor_code_shows_no_untranslated_literal():
    """A word in a literal that lands on screen is English only: it must be a t() key instead."""
    offenders = []
    for js in (PACK / "web").rglob("*.js"):
        for number, text in enumerate(js.read_text(encoding="utf-8").splitlines(), 1):
            for literal in SHOWN_LITERAL.findall(text):
                if re.search(r"[^\W\d_]", literal):
                    offenders.append(f"{js.relative_to(PACK)}:{number}: {text.strip()}")
    assert offenders == [], "texts shown without t():\n" + "\n".join(offenders)


DOCS = PACK / "web" / "docs"


def test_a_help_page_per_node_in_every_editor_locale(pack):
    """The editor asks /extensions/<pack>/docs/<Node>/<locale>.md first, then <Node>.md (English,
    the fallback): so English lives in <Node>.md only and every other locale has its own page."""
    for name in pack.NODE_CLASS_MAPPINGS:
        assert (DOCS / f"{name}.md").is_file(), name
        pages = sorted(p.stem for p in (DOCS / name).glob("*.md"))
        assert pages == sorted(lang for lang in EDITOR_LOCALES if lang != "en"), name


@pytest.mark.parametrize("lang", [lang for lang in EDITOR_LOCALES if lang != "en"])
def test_translated_help_pages_document_every_input_output_and_choice(pack, lang):
    titles = json.loads((LOCALES / lang / "nodeDefs.json").read_text(encoding="utf-8"))
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        text = (DOCS / name / f"{lang}.md").read_text(encoding="utf-8")
        assert text.startswith(f"# {titles[name]['display_name']}\n"), (lang, name)
        for section in ("required", "optional"):
            for input_name, spec in cls.INPUT_TYPES().get(section, {}).items():
                assert f"`{input_name}`" in text, (lang, name, input_name)
                if isinstance(spec[0], list):
                    for choice in spec[0]:
                        assert str(choice) in text, (lang, name, input_name, choice)
        for output_name in cls.RETURN_NAMES:
            assert f"`{output_name}`" in text, (lang, name, output_name)


@pytest.mark.parametrize("lang", [lang for lang in EDITOR_LOCALES if lang != "en"])
def test_translated_help_pages_quote_the_status_lines_the_node_shows(lang):
    texts = pack_import("nodes.user_language")
    for name in ("RunComfyNanoBanana2TextToImage", "RunComfyNanoBanana2Edit"):
        page = (DOCS / name / f"{lang}.md").read_text(encoding="utf-8")
        for key in ("submitted", "running", "cancelled", "notCancellable"):
            assert f"`{texts.text(lang, f'status.{key}', id='<id>')}`" in page, (lang, name, key)
        for key in ("noToken", "tokenRejected", "balanceTooLow", "safetyFilter", "gaveUpWaiting"):
            assert texts.text(lang, f"errors.{key}") in page, (lang, name, key)
