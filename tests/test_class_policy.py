"""Tests for the class policy (carvision.class_policy): merge file + inline map, chains, cycles, years."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from carvision.class_policy import ClassPolicyError, build_merge_map, class_names, match_key, read_merge_file


def _labels(*names: str) -> pd.Series:
    return pd.Series(list(names), dtype="string")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_match_key_folds_case_unicode_form_and_spaces():
    decomposed = unicodedata.normalize("NFD", "Citroën C3")
    assert decomposed != "Citroën C3"
    assert match_key(decomposed) == match_key("CITROËN  c3") == "citroën c3"
    assert match_key("Ford Ka") != match_key("Ford K")


def test_chains_resolve_to_the_final_class():
    m = build_merge_map({"A": "B", "B": "C", "C": "D", "X": "Y"})
    assert m.final == {"a": "D", "b": "D", "c": "D", "x": "Y"}
    assert m.via["a"] == ("b", "c")


@pytest.mark.parametrize(
    "inline, names",
    [
        ({"Ford Ka": "Ford Fiesta", "Ford Fiesta": "ford ka"}, ["Ford Ka", "Ford Fiesta", "Ford Ka"]),
        ({"A": "B", "B": "C", "C": "A", "Z": "A"}, ["A", "B", "C", "A"]),
    ],
)
def test_a_cycle_is_an_error_naming_its_keys(inline, names):
    with pytest.raises(ClassPolicyError, match="cycle") as e:
        build_merge_map(inline)
    assert " -> ".join(names) in str(e.value)


def test_a_key_mapped_to_itself_in_another_spelling_is_a_rename_not_a_cycle():
    m = build_merge_map({"bmw x5": "BMW X5"})
    assert m.final == {"bmw x5": "BMW X5"}


def test_file_first_then_inline_over_it(tmp_path):
    f = _write(
        tmp_path / "merge.yaml",
        "# Stanford's van variants are one model\n"
        "Chevrolet Express Cargo Van: Chevrolet Express Van\n"
        "Toyota Corolla Cross: Toyota Corolla\n"
        "Dodge Sprinter Cargo Van: Dodge Sprinter\n",
    )
    # Inline replaces the file's entry for the same key (matched case-insensitively) and extends its chains.
    m = build_merge_map(
        {"toyota corolla cross": "Toyota C-HR", "Chevrolet Express Van": "Chevrolet Express"}, file=str(f)
    )
    assert m.final[match_key("Toyota Corolla Cross")] == "Toyota C-HR"
    assert m.final[match_key("Chevrolet Express Cargo Van")] == "Chevrolet Express"
    assert m.final[match_key("Dodge Sprinter Cargo Van")] == "Dodge Sprinter"
    assert m.overridden == ["Toyota Corolla Cross"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("- Ford Ka\n- Ford Fiesta\n", "mapping"),
        ("Ford Ka: [Ford, Fiesta]\n", "text"),
        ("Ford Ka: 'Ford Fiesta\n", "YAML"),
    ],
)
def test_a_bad_merge_file_is_an_error_at_start(tmp_path, text, message):
    f = _write(tmp_path / "merge.yaml", text)
    with pytest.raises(ClassPolicyError, match=message) as e:
        build_merge_map({}, file=f)
    assert "split.class_merge_file" in str(e.value)


def test_a_missing_merge_file_is_an_error_and_an_empty_one_is_no_merge(tmp_path):
    with pytest.raises(ClassPolicyError, match="does not exist"):
        build_merge_map({}, file=tmp_path / "nope.yaml")
    assert read_merge_file(_write(tmp_path / "empty.yaml", "# nothing yet\n")) == {}


def test_one_source_giving_two_classes_to_one_label_is_an_error(tmp_path):
    with pytest.raises(ClassPolicyError, match="second class"):
        build_merge_map({"Ford Ka": "Ford Fiesta", "FORD KA": "Ford Focus"})
    f = _write(tmp_path / "merge.yaml", "Ford Ka: Ford Fiesta\nford ka: Ford Fiesta\n")  # same class: harmless
    assert build_merge_map({}, file=f).final == {"ford ka": "Ford Fiesta"}


def test_entries_matching_no_label_are_listed_but_chain_steps_are_not():
    m = build_merge_map({"Jeep Wrangler": "Jeep CJ", "Jeep CJ": "Jeep", "Jeeep Cherokee": "Jeep"})
    assert m.entries_matching_no_label(_labels("jeep wrangler", "Ford Ka")) == ["Jeeep Cherokee"]
    assert m.entries_matching_no_label(_labels("Ford Ka")) == ["Jeeep Cherokee", "Jeep CJ", "Jeep Wrangler"]


def test_class_names_merge_case_insensitively_and_take_the_datas_spelling():
    labels = _labels("VW Golf", "Volkswagen Golf", "Citroën C3", "Ford Ka")
    years = _labels("", "", "", "")
    merge = build_merge_map({"vw golf": "volkswagen GOLF", unicodedata.normalize("NFD", "CITROËN C3"): "Citroen"})
    classes, notes = class_names(labels, years, merge, merge_years=True)
    # The target matches an existing label case-insensitively: one class in that label's spelling, not a twin.
    assert classes.tolist() == ["Volkswagen Golf", "Volkswagen Golf", "Citroen", "Ford Ka"]
    assert notes["merged_labels"] == {"Citroen": {"Citroën C3": 1}, "Volkswagen Golf": {"VW Golf": 1}}
    assert notes["merge_entries_matching_no_label"] == []


def test_merge_years_true_reports_the_year_classes_behind_each_class():
    labels = _labels("Audi S4", "Audi S4", "Audi S4", "BMW M3", "BMW M3", "Kia Rio")
    years = _labels("2007", "2012", "2012", "2010", "2010", "")
    classes, notes = class_names(labels, years, build_merge_map({}), merge_years=True)
    assert classes.tolist() == labels.tolist()
    assert notes["years_merged_per_class"] == {"Audi S4": ["2007", "2012"]}  # BMW's year does not vary
    assert notes["classes_merged_over_years"] == 1


def test_merge_years_false_makes_one_class_per_year_after_the_merge():
    labels = _labels("Audi S4", "Audi S4", "Audi RS4", "Kia Rio")
    years = _labels("2007", "2012", "2012", "")
    classes, notes = class_names(labels, years, build_merge_map({"Audi RS4": "Audi S4"}), merge_years=False)
    assert classes.tolist() == ["Audi S4 2007", "Audi S4 2012", "Audi S4 2012", "Kia Rio"]
    assert notes["year_classes_per_label"] == {"Audi S4": ["Audi S4 2007", "Audi S4 2012"]}
    assert notes["classes_formed_with_years"] == 2
    assert notes["rows_without_year"] == 1
