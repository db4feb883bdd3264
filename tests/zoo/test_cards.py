"""Each preset folder carries its card as README.md, rendered from its metadata.json; model_cards/ holds the
same cards, links rebased, for the README and the docs site."""
from pathlib import Path

import pytest

import zoo
from zoo import cards

SHIPPED = [name for name in zoo.list_models() if zoo.has_weights(name)]


def test_every_shipped_preset_has_a_card_and_model_cards_holds_no_other():
    assert SHIPPED, "no shipped preset"
    missing = [name for name in SHIPPED if not (zoo.preset_folder(name) / "README.md").is_file()]
    assert not missing, f"preset folders without README.md: {missing}; `zoo card` renders them"
    docs = {p.stem for p in cards.CARDS_DIR.glob("*.md")}
    assert docs == set(SHIPPED), f"model_cards/ and the shipped presets differ: {sorted(docs ^ set(SHIPPED))}"


@pytest.mark.parametrize("name", SHIPPED)
def test_the_folders_card_is_what_its_metadata_renders_and_model_cards_holds_a_copy(name):
    folder = zoo.preset_folder(name)
    readme = (folder / "README.md").read_text()
    assert readme == cards.render_card(name, figure_dir=""), f"{name}: README.md is stale; run `zoo card {name}`"
    assert "](evaluation.png)" in readme  # the Hub shows the figure beside the card
    copy = cards.card_path(name).read_text()
    assert copy == cards.docs_copy(readme, folder), f"model_cards/{name}.md differs from {folder}/README.md"
    assert f"](../zoo/pretrained/{name}/evaluation.png)" in copy


def test_docs_copy_rebases_the_links_to_the_folders_files_only(tmp_path, monkeypatch):
    folder = tmp_path / "zoo" / "pretrained" / "p"
    folder.mkdir(parents=True)
    (folder / "fig.png").write_bytes(b"png")
    monkeypatch.setattr(cards, "CARDS_DIR", tmp_path / "model_cards")
    readme = "![f](fig.png) [g](gone.png) [w](https://example.org/fig.png) [a](#speed) [f again](fig.png)\n"
    assert cards.docs_copy(readme, folder) == (
        "![f](../zoo/pretrained/p/fig.png) [g](gone.png) [w](https://example.org/fig.png) [a](#speed) "
        "[f again](../zoo/pretrained/p/fig.png)\n")


def test_the_speed_numbers_ship_with_the_package():
    """Cards read the benchmarks' numbers from package data, so an installed zoo renders the same cards."""
    assert cards.SPEED_FILE.parent == Path(zoo.__file__).parent and cards.SPEED_FILE.is_file()
    measured = [name for name in SHIPPED if cards.benchmark_results(name)]
    assert measured, "no shipped preset has speed numbers"
    assert "## Speed\n\nMeasured by `benchmarks/" in (zoo.preset_folder(measured[0]) / "README.md").read_text()


def test_citing_a_folder_of_an_unregistered_preset_says_why_it_cannot(tmp_path):
    from zoo import artifacts

    model = zoo.load("scinet-pendulum", pretrained=False, encoder_units=[8], decoder_units=[8])
    artifacts.write_preset(tmp_path / "orphan", model, {"name": "orphan"})
    assert "physics_model_zoo" in cards.citation(zoo.preset_folder("scinet-pendulum"))
    with pytest.raises(ValueError, match="unregistered preset.*Expected a registered preset"):
        cards.citation(tmp_path / "orphan")
