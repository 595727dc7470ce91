#include "policies/merge/json_merge.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace arbiter {
namespace {

using nlohmann::json;
using MergePointers = std::vector<std::string>;

const MergeKeys kNoMergeKeys;
const MergeKeys kLinesById{{"/lines", "id"}};

// Every pointer names a value in `to` or (removals) in `from`: the pointers are real RFC 6901.
void expect_pointers_resolve(const MergePointers& pointers, const json& from, const json& to) {
  for (const auto& pointer : pointers) {
    json::json_pointer parsed(pointer);
    EXPECT_TRUE(to.contains(parsed) || from.contains(parsed)) << pointer;
  }
}

MergeOutcome expect_merged(const json& base, const json& current, const json& yours, const MergeKeys& keys,
                           const json& expected) {
  MergeOutcome outcome = three_way_merge(base, current, yours, keys);
  EXPECT_TRUE(outcome.merged) << ::testing::PrintToString(outcome.conflicts);
  EXPECT_TRUE(outcome.conflicts.empty());
  EXPECT_EQ(outcome.document, expected) << outcome.document.dump();
  return outcome;
}

void expect_conflicts(const json& base, const json& current, const json& yours, const MergeKeys& keys,
                      const MergePointers& expected) {
  MergeOutcome outcome = three_way_merge(base, current, yours, keys);
  EXPECT_FALSE(outcome.merged) << outcome.document.dump();
  EXPECT_EQ(outcome.conflicts, expected);
  EXPECT_TRUE(outcome.document.is_null());
}

// ---- changed_pointers -----------------------------------------------------------------------

TEST(ChangedPointersTest, EachAddedChangedOrRemovedMemberIsItsOwnPointer) {
  json from = {{"a", 1}, {"b", {{"c", 2}, {"d", 3}}}, {"gone", true}};
  json to = {{"a", 1}, {"b", {{"c", 20}, {"d", 3}, {"e", 4}}}, {"new", "x"}};
  auto pointers = changed_pointers(from, to, kNoMergeKeys);
  EXPECT_EQ(pointers, (MergePointers{"/b/c", "/b/e", "/new", "/gone"}));
  expect_pointers_resolve(pointers, from, to);
}

TEST(ChangedPointersTest, EqualDocumentsHaveNoChanges) {
  json document = {{"a", {{"b", {1, 2}}}}, {"n", nullptr}};
  EXPECT_TRUE(changed_pointers(document, document, kLinesById).empty());
  EXPECT_TRUE(changed_pointers(json(1), json(1.0), kNoMergeKeys).empty());  // the same number
}

TEST(ChangedPointersTest, ATypeChangeIsOnePointer) {
  json from = {{"a", {{"b", 1}, {"c", 2}}}};
  EXPECT_EQ(changed_pointers(from, {{"a", "flat"}}, kNoMergeKeys), (MergePointers{"/a"}));
  EXPECT_EQ(changed_pointers(from, {{"a", {1, 2}}}, kNoMergeKeys), (MergePointers{"/a"}));
}

TEST(ChangedPointersTest, NullIsAValueDistinctFromAbsent) {
  json from = {{"a", 1}, {"b", nullptr}};
  EXPECT_EQ(changed_pointers(from, {{"a", nullptr}, {"b", nullptr}}, kNoMergeKeys), (MergePointers{"/a"}));
  EXPECT_EQ(changed_pointers(from, {{"a", 1}}, kNoMergeKeys), (MergePointers{"/b"}));
  EXPECT_EQ(changed_pointers(from, {{"a", 1}, {"b", nullptr}, {"c", nullptr}}, kNoMergeKeys), (MergePointers{"/c"}));
}

TEST(ChangedPointersTest, AnArrayIsOneValueUnlessKeyed) {
  json from = {{"tags", {"a", "b", "c"}}, {"lines", json::array({{{"id", 1}, {"q", 1}}})}};
  json to = {{"tags", {"a", "B", "c"}}, {"lines", json::array({{{"id", 1}, {"q", 2}}})}};
  EXPECT_EQ(changed_pointers(from, to, kNoMergeKeys), (MergePointers{"/lines", "/tags"}));
  EXPECT_EQ(changed_pointers(from, to, kLinesById), (MergePointers{"/lines/0/q", "/tags"}));
}

TEST(ChangedPointersTest, KeyedElementsAreIndexedInTheDocumentThatHoldsThem) {
  json from = {{"lines", json::array({{{"id", "a"}, {"q", 1}}, {{"id", "b"}, {"q", 1}}, {{"id", "c"}, {"q", 1}}})}};
  json to = {{"lines", json::array({{{"id", "b"}, {"q", 5}}, {{"id", "c"}, {"q", 1}}, {{"id", "d"}, {"q", 1}}})}};
  auto pointers = changed_pointers(from, to, kLinesById);
  // b changed (index 0 in `to`), d added (index 2 in `to`), a removed (index 0 in `from`).
  EXPECT_EQ(pointers, (MergePointers{"/lines/0/q", "/lines/2", "/lines/0"}));
  expect_pointers_resolve(pointers, from, to);
}

TEST(ChangedPointersTest, KeyedArraysNestInsideObjectsAndElements) {
  MergeKeys keys{{"/order/lines", "id"}, {"/order/lines/parts", "sku"}};
  json from = {{"order", {{"lines", json::array({{{"id", 7}, {"parts", json::array({{{"sku", "x"}, {"n", 1}}})}}})}}}};
  json to = from;
  to["order"]["lines"][0]["parts"][0]["n"] = 2;
  EXPECT_EQ(changed_pointers(from, to, keys), (MergePointers{"/order/lines/0/parts/0/n"}));
  // Without the inner key, the inner array is one value inside the keyed element.
  EXPECT_EQ(changed_pointers(from, to, MergeKeys{{"/order/lines", "id"}}), (MergePointers{"/order/lines/0/parts"}));
}

TEST(ChangedPointersTest, AKeyedArrayFallsBackToOneValueWhenAnElementCannotBeKeyed) {
  json from = {{"lines", json::array({{{"id", 1}, {"q", 1}}, {{"id", 2}, {"q", 1}}})}};
  json missing_key = {{"lines", json::array({{{"id", 1}, {"q", 2}}, {{"q", 1}}})}};
  json duplicate_key = {{"lines", json::array({{{"id", 1}, {"q", 2}}, {{"id", 1}, {"q", 1}}})}};
  json object_key = {{"lines", json::array({{{"id", {{"x", 1}}}, {"q", 2}}, {{"id", 2}, {"q", 1}}})}};
  json not_an_object = {{"lines", json::array({{{"id", 1}, {"q", 2}}, 5})}};
  json fractional_key = {{"lines", json::array({{{"id", 1}, {"q", 2}}, {{"id", 2.5}, {"q", 1}}})}};
  json huge_key = {{"lines", json::array({{{"id", 1}, {"q", 2}}, {{"id", std::uint64_t{1} << 63}, {"q", 1}}})}};
  for (const json& to : {missing_key, duplicate_key, object_key, not_an_object, fractional_key, huge_key}) {
    EXPECT_EQ(changed_pointers(from, to, kLinesById), (MergePointers{"/lines"})) << to.dump();
  }
}

TEST(ChangedPointersTest, ReorderingAKeyedArrayChangesTheWholeArray) {
  json from = {{"lines", json::array({{{"id", 1}}, {{"id", 2}}})}};
  json to = {{"lines", json::array({{{"id", 2}}, {{"id", 1}}})}};
  EXPECT_EQ(changed_pointers(from, to, kLinesById), (MergePointers{"/lines"}));
}

TEST(ChangedPointersTest, KeysOfDifferentTypesAreDifferentElements) {
  json from = {{"lines", json::array({{{"id", 1}}})}};
  json to = {{"lines", json::array({{{"id", "1"}}})}};
  EXPECT_EQ(changed_pointers(from, to, kLinesById), (MergePointers{"/lines/0", "/lines/0"}));  // added, removed
}

TEST(ChangedPointersTest, IntegerKeysMatchWhateverIntegerTypeHoldsThem) {
  json from = json::parse(R"({"lines": [{"id": 3, "q": 1}, {"id": -1, "q": 1}]})");  // unsigned, signed
  json to = {{"lines", json::array({{{"id", std::int64_t{3}}, {"q", 2}}, {{"id", -1}, {"q", 1}}})}};
  ASSERT_NE(from["lines"][0]["id"].type(), to["lines"][0]["id"].type());
  EXPECT_EQ(changed_pointers(from, to, kLinesById), (MergePointers{"/lines/0/q"}));
}

TEST(ChangedPointersTest, MemberNamesAreEscaped) {
  json from = {{"a/b", 1}, {"c~d", {{"e", 1}}}};
  json to = {{"a/b", 2}, {"c~d", {{"e", 2}}}};
  MergeKeys keys{{"/c~0d/e", "id"}};
  auto pointers = changed_pointers(from, to, keys);
  EXPECT_EQ(pointers, (MergePointers{"/a~1b", "/c~0d/e"}));
  expect_pointers_resolve(pointers, from, to);
}

TEST(ChangedPointersTest, ARootScalarOrArrayIsTheRootPointer) {
  EXPECT_EQ(changed_pointers(json(1), json(2), kNoMergeKeys), (MergePointers{""}));
  EXPECT_EQ(changed_pointers(json::array({1}), json::array({1, 2}), kNoMergeKeys), (MergePointers{""}));
  EXPECT_EQ(changed_pointers(json::object(), json::array(), kNoMergeKeys), (MergePointers{""}));
  json from = json::array({{{"id", 1}, {"q", 1}}});
  json to = json::array({{{"id", 1}, {"q", 2}}});
  EXPECT_EQ(changed_pointers(from, to, MergeKeys{{"", "id"}}), (MergePointers{"/0/q"}));
}

// ---- three_way_merge: objects -----------------------------------------------------------------

TEST(ThreeWayMergeTest, DisjointFieldsMerge) {
  json base = {{"name", "a"}, {"price", 1}, {"stock", 5}};
  json current = {{"name", "a"}, {"price", 2}, {"stock", 5}};
  json yours = {{"name", "b"}, {"price", 1}, {"stock", 5}};
  auto outcome = expect_merged(base, current, yours, kNoMergeKeys, {{"name", "b"}, {"price", 2}, {"stock", 5}});
  EXPECT_EQ(outcome.applied, (MergePointers{"/name"}));
}

TEST(ThreeWayMergeTest, TheSameFieldConflicts) {
  json base = {{"name", "a"}, {"price", 1}};
  expect_conflicts(base, {{"name", "a"}, {"price", 2}}, {{"name", "a"}, {"price", 3}}, kNoMergeKeys,
                   MergePointers{"/price"});
}

TEST(ThreeWayMergeTest, NestedSiblingChangesMerge) {
  json base = {{"a", {{"b", 1}, {"c", 1}, {"d", {{"e", 1}}}}}};
  json current = {{"a", {{"b", 2}, {"c", 1}, {"d", {{"e", 1}}}}}};
  json yours = {{"a", {{"b", 1}, {"c", 3}, {"d", {{"e", 1}, {"f", 4}}}}}};
  expect_merged(base, current, yours, kNoMergeKeys, {{"a", {{"b", 2}, {"c", 3}, {"d", {{"e", 1}, {"f", 4}}}}}});
}

TEST(ThreeWayMergeTest, AReplacedObjectConflictsWithAChangeInsideIt) {
  json base = {{"a", {{"b", 1}, {"c", 1}}}, {"z", 0}};
  json changed_inside = {{"a", {{"b", 2}, {"c", 1}}}, {"z", 0}};
  json replaced = {{"a", "flat"}, {"z", 0}};
  json removed = {{"z", 0}};
  expect_conflicts(base, replaced, changed_inside, kNoMergeKeys, MergePointers{"/a", "/a/b"});
  expect_conflicts(base, changed_inside, replaced, kNoMergeKeys, MergePointers{"/a", "/a/b"});
  expect_conflicts(base, changed_inside, removed, kNoMergeKeys, MergePointers{"/a", "/a/b"});
}

TEST(ThreeWayMergeTest, ARemovalMergesWithAChangeElsewhere) {
  json base = {{"a", 1}, {"b", 1}, {"c", {{"d", 1}, {"e", 1}}}};
  json current = {{"a", 2}, {"b", 1}, {"c", {{"d", 1}, {"e", 1}}}};
  json yours = {{"a", 1}, {"c", {{"d", 1}}}};
  expect_merged(base, current, yours, kNoMergeKeys, {{"a", 2}, {"c", {{"d", 1}}}});
}

TEST(ThreeWayMergeTest, RemovingAndChangingOneMemberConflicts) {
  json base = {{"a", 1}, {"b", 1}};
  expect_conflicts(base, {{"b", 1}}, {{"a", 2}, {"b", 1}}, kNoMergeKeys, MergePointers{"/a"});
  expect_conflicts(base, {{"a", 2}, {"b", 1}}, {{"b", 1}}, kNoMergeKeys, MergePointers{"/a"});
}

TEST(ThreeWayMergeTest, NullIsAValueNotAnAbsence) {
  json base = {{"a", 1}, {"b", 1}};
  // Setting a member to null is a change, applied as null (not as a removal).
  expect_merged(base, {{"a", 1}, {"b", 2}}, {{"a", nullptr}, {"b", 1}}, kNoMergeKeys, {{"a", nullptr}, {"b", 2}});
  // null on one side, removal on the other: different changes of one member.
  expect_conflicts(base, {{"b", 1}}, {{"a", nullptr}, {"b", 1}}, kNoMergeKeys, MergePointers{"/a"});
  // A member that was null, given a value.
  json null_base = {{"a", nullptr}, {"b", 1}};
  expect_merged(null_base, {{"a", nullptr}, {"b", 2}}, {{"a", 5}, {"b", 1}}, kNoMergeKeys, {{"a", 5}, {"b", 2}});
}

TEST(ThreeWayMergeTest, ATypeChangeConflictsWithAChangeUnderIt) {
  json base = {{"a", {{"b", {{"c", 1}}}}}};
  expect_conflicts(base, {{"a", "text"}}, {{"a", {{"b", {{"c", 2}}}}}}, kNoMergeKeys, MergePointers{"/a", "/a/b/c"});
  expect_conflicts(base, {{"a", {{"b", {1, 2}}}}}, {{"a", {{"b", {{"c", 2}}}}}}, kNoMergeKeys,
                   MergePointers{"/a/b", "/a/b/c"});
}

TEST(ThreeWayMergeTest, IdenticalChangesOnBothSidesMerge) {
  json base = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", {{"e", 1}}}};
  json current = {{"a", 2}, {"b", 1}, {"d", "x"}};
  json yours = {{"a", 2}, {"b", 3}, {"d", "x"}};
  expect_merged(base, current, yours, kNoMergeKeys, {{"a", 2}, {"b", 3}, {"d", "x"}});
}

TEST(ThreeWayMergeTest, NoChangeOnEitherSideGivesTheOtherSide) {
  json base = {{"a", 1}};
  json current = {{"a", 2}, {"b", {1, 2}}};
  expect_merged(base, current, base, kNoMergeKeys, current);
  expect_merged(base, base, current, kNoMergeKeys, current);
}

// ---- three_way_merge: arrays ------------------------------------------------------------------

TEST(ThreeWayMergeTest, AnArrayChangedOnBothSidesConflictsEvenInDifferentElements) {
  json base = {{"tags", {"a", "b", "c"}}};
  expect_conflicts(base, {{"tags", {"A", "b", "c"}}}, {{"tags", {"a", "b", "C"}}}, kNoMergeKeys,
                   MergePointers{"/tags"});
  // An array of objects is one value too without a merge key.
  json lines = {{"lines", json::array({{{"id", 1}, {"q", 1}}, {{"id", 2}, {"q", 1}}})}};
  json first_changed = lines;
  first_changed["lines"][0]["q"] = 5;
  json second_changed = lines;
  second_changed["lines"][1]["q"] = 5;
  expect_conflicts(lines, first_changed, second_changed, kNoMergeKeys, MergePointers{"/lines"});
}

TEST(ThreeWayMergeTest, AnArrayChangedOnOneSideIsTakenWhole) {
  json base = {{"tags", {"a", "b"}}, {"name", "x"}};
  expect_merged(base, {{"tags", {"a", "b"}}, {"name", "y"}}, {{"tags", {"b", "c", "d"}}, {"name", "x"}},
                kNoMergeKeys, {{"tags", {"b", "c", "d"}}, {"name", "y"}});
  expect_merged(base, {{"tags", {"b"}}, {"name", "x"}}, {{"tags", {"a", "b"}}, {"name", "z"}}, kNoMergeKeys,
                {{"tags", {"b"}}, {"name", "z"}});
}

json order_lines(std::initializer_list<std::pair<int, int>> id_and_quantity) {
  json lines = json::array();
  for (auto [id, quantity] : id_and_quantity) {
    lines.push_back({{"id", id}, {"q", quantity}, {"note", ""}});
  }
  return {{"customer", "c"}, {"lines", lines}};
}

TEST(ThreeWayMergeTest, KeyedElementsChangedOnDifferentSidesMerge) {
  json base = order_lines({{1, 1}, {2, 1}, {3, 1}});
  json current = order_lines({{1, 1}, {2, 1}, {3, 7}});
  json yours = order_lines({{1, 4}, {2, 1}, {3, 1}});
  expect_merged(base, current, yours, kLinesById, order_lines({{1, 4}, {2, 1}, {3, 7}}));
}

TEST(ThreeWayMergeTest, DifferentFieldsOfOneKeyedElementMerge) {
  json base = order_lines({{1, 1}, {2, 1}});
  json current = base;
  current["lines"][1]["q"] = 9;
  json yours = base;
  yours["lines"][1]["note"] = "fragile";
  json expected = base;
  expected["lines"][1]["q"] = 9;
  expected["lines"][1]["note"] = "fragile";
  expect_merged(base, current, yours, kLinesById, expected);
}

TEST(ThreeWayMergeTest, TheSameFieldOfOneKeyedElementConflicts) {
  json base = order_lines({{1, 1}, {2, 1}});
  expect_conflicts(base, order_lines({{1, 1}, {2, 5}}), order_lines({{1, 1}, {2, 6}}), kLinesById,
                   MergePointers{"/lines/1/q"});
}

TEST(ThreeWayMergeTest, AnElementAddedMergesWithAnotherChangedAndIsAppended) {
  json base = order_lines({{1, 1}, {2, 1}});
  json current = order_lines({{1, 1}, {2, 3}, {8, 1}});
  json yours = order_lines({{5, 1}, {1, 1}, {2, 1}, {4, 1}});  // added 5 before and 4 after
  auto outcome = expect_merged(base, current, yours, kLinesById, order_lines({{1, 1}, {2, 3}, {8, 1}, {5, 1}, {4, 1}}));
  EXPECT_EQ(outcome.applied, (MergePointers{"/lines/0", "/lines/3"}));
}

TEST(ThreeWayMergeTest, AnElementRemovedMergesWithAnotherChanged) {
  json base = order_lines({{1, 1}, {2, 1}, {3, 1}});
  expect_merged(base, order_lines({{1, 1}, {2, 1}, {3, 2}}), order_lines({{2, 1}, {3, 1}}), kLinesById,
                order_lines({{2, 1}, {3, 2}}));
}

TEST(ThreeWayMergeTest, AnElementRemovedByOneSideAndChangedByTheOtherConflicts) {
  json base = order_lines({{1, 1}, {2, 1}, {3, 1}});
  // Yours changes element 3 (index 2 in yours); current removed it (index 2 in base).
  expect_conflicts(base, order_lines({{1, 1}, {2, 1}}), order_lines({{1, 1}, {2, 1}, {3, 4}}), kLinesById,
                   MergePointers{"/lines/2", "/lines/2/q"});
}

TEST(ThreeWayMergeTest, ConflictPointersIndexTheClientsDocumentWhereItHoldsTheElement) {
  json base = order_lines({{1, 1}, {2, 1}, {3, 1}});
  // Current removed element 1, so element 3 is at index 1 in current but at index 2 in yours.
  expect_conflicts(base, order_lines({{2, 1}, {3, 5}}), order_lines({{1, 1}, {2, 1}, {3, 6}}), kLinesById,
                   MergePointers{"/lines/2/q"});
}

TEST(ThreeWayMergeTest, BothSidesAddingOneKeyConflictUnlessTheElementsAreEqual) {
  json base = order_lines({{1, 1}});
  expect_conflicts(base, order_lines({{1, 1}, {2, 1}}), order_lines({{1, 1}, {2, 2}}), kLinesById,
                   MergePointers{"/lines/1"});
  expect_merged(base, order_lines({{1, 1}, {2, 1}}), order_lines({{1, 1}, {2, 1}}), kLinesById,
                order_lines({{1, 1}, {2, 1}}));
}

TEST(ThreeWayMergeTest, BothSidesRemovingOneElementMerge) {
  json base = order_lines({{1, 1}, {2, 1}, {3, 1}});
  expect_merged(base, order_lines({{1, 1}, {3, 2}}), order_lines({{1, 5}, {3, 1}}), kLinesById,
                order_lines({{1, 5}, {3, 2}}));
}

TEST(ThreeWayMergeTest, AnElementWithoutItsKeyMakesTheArrayOneValue) {
  json base = order_lines({{1, 1}, {2, 1}});
  json current = order_lines({{1, 2}, {2, 1}});
  json yours = base;
  yours["lines"][1].erase("id");
  yours["lines"][1]["q"] = 3;
  expect_conflicts(base, current, yours, kLinesById, MergePointers{"/lines", "/lines/0/q"});
  // One side only: that side's array is taken whole.
  json other = base;
  other["customer"] = "d";
  json expected = yours;
  expected["customer"] = "d";
  expect_merged(base, other, yours, kLinesById, expected);
}

TEST(ThreeWayMergeTest, AReorderedKeyedArrayConflictsWithAnElementChange) {
  json base = order_lines({{1, 1}, {2, 1}});
  expect_conflicts(base, order_lines({{2, 1}, {1, 1}}), order_lines({{1, 1}, {2, 3}}), kLinesById,
                   MergePointers{"/lines", "/lines/1/q"});
}

// ---- three_way_merge: roots -------------------------------------------------------------------

TEST(ThreeWayMergeTest, RootScalarsMergeOnlyWhenOneSideIsUnchanged) {
  expect_conflicts(json(1), json(2), json(3), kNoMergeKeys, MergePointers{""});
  expect_merged(json(1), json(1), json(3), kNoMergeKeys, json(3));
  expect_merged(json("s"), json("t"), json("t"), kNoMergeKeys, json("t"));
}

TEST(ThreeWayMergeTest, RootArraysAreOneValueUnlessKeyed) {
  expect_conflicts(json::array({1, 2}), json::array({1, 2, 3}), json::array({0, 1, 2}), kNoMergeKeys,
                   MergePointers{""});
  json base = json::array({{{"id", 1}, {"q", 1}}, {{"id", 2}, {"q", 1}}});
  json current = json::array({{{"id", 1}, {"q", 5}}, {{"id", 2}, {"q", 1}}});
  json yours = json::array({{{"id", 1}, {"q", 1}}, {{"id", 2}, {"q", 6}}});
  expect_merged(base, current, yours, MergeKeys{{"", "id"}},
                json::array({{{"id", 1}, {"q", 5}}, {{"id", 2}, {"q", 6}}}));
}

TEST(ThreeWayMergeTest, ReplacingTheRootConflictsWithAnyOtherChange) {
  json base = {{"a", 1}, {"b", 1}};
  expect_conflicts(base, {{"a", 2}, {"b", 1}}, json::array({1}), kNoMergeKeys, MergePointers{"", "/a"});
  expect_conflicts(base, json("gone"), {{"a", 1}, {"b", 2}}, kNoMergeKeys, MergePointers{"", "/b"});
  expect_merged(base, base, json::array({1}), kNoMergeKeys, json::array({1}));
}

// ---- patches ----------------------------------------------------------------------------------

TEST(ApplyMergePatchTest, SetsMembersAndNullRemovesThem) {
  json document = {{"a", 1}, {"b", {{"c", 1}, {"d", 1}}}, {"e", {1, 2}}};
  auto outcome = apply_merge_patch(document, {{"a", 2}, {"b", {{"c", nullptr}, {"x", 3}}}, {"e", {3}}, {"f", "new"}});
  EXPECT_EQ(outcome.result, PatchOutcome::Result::Applied);
  EXPECT_EQ(outcome.document, (json{{"a", 2}, {"b", {{"d", 1}, {"x", 3}}}, {"e", {3}}, {"f", "new"}}));
}

TEST(ApplyMergePatchTest, ANonObjectPatchReplacesTheDocument) {
  json document = {{"a", 1}};
  EXPECT_EQ(apply_merge_patch(document, json::array({1, 2})).document, json::array({1, 2}));
  EXPECT_EQ(apply_merge_patch(json("text"), {{"a", {{"b", nullptr}, {"c", 1}}}}).document, (json{{"a", {{"c", 1}}}}));
}

json apply_json_patch_text(const json& document, const char* patch_text, PatchOutcome::Result expected_result) {
  auto outcome = apply_json_patch(document, json::parse(patch_text));
  EXPECT_EQ(outcome.result, expected_result) << patch_text << ": " << outcome.error;
  return outcome.document;
}

TEST(ApplyJsonPatchTest, AppliesEveryOperationInOrder) {
  json document = {{"a", {{"b", 1}}}, {"list", {1, 2, 3}}, {"keep", "k"}};
  json patched = apply_json_patch_text(document, R"([
      {"op": "add", "path": "/a/c", "value": {"d": 1}},
      {"op": "add", "path": "/list/1", "value": 9},
      {"op": "add", "path": "/list/-", "value": 10},
      {"op": "remove", "path": "/list/0"},
      {"op": "replace", "path": "/a/b", "value": null},
      {"op": "copy", "from": "/a/c", "path": "/copied"},
      {"op": "move", "from": "/keep", "path": "/a/moved"},
      {"op": "test", "path": "/a/moved", "value": "k"},
      {"op": "test", "path": "/list", "value": [9, 2, 3, 10]}
    ])", PatchOutcome::Result::Applied);
  EXPECT_EQ(patched, (json{{"a", {{"b", nullptr}, {"c", {{"d", 1}}}, {"moved", "k"}}},
                           {"list", {9, 2, 3, 10}},
                           {"copied", {{"d", 1}}}}));
}

TEST(ApplyJsonPatchTest, TheRootCanBeReplacedAndEscapedNamesAddressed) {
  EXPECT_EQ(apply_json_patch_text({{"a", 1}}, R"([{"op": "add", "path": "", "value": [1]}])",
                                  PatchOutcome::Result::Applied),
            json::array({1}));
  EXPECT_EQ(apply_json_patch_text({{"a/b", 1}, {"c~d", 2}},
                                  R"([{"op": "replace", "path": "/a~1b", "value": 3},
                                      {"op": "remove", "path": "/c~0d"}])",
                                  PatchOutcome::Result::Applied),
            (json{{"a/b", 3}}));
}

TEST(ApplyJsonPatchTest, AFailingTestIsTestFailed) {
  json document = {{"version", 3}};
  auto outcome = apply_json_patch(document, json::parse(R"([
      {"op": "replace", "path": "/version", "value": 4},
      {"op": "test", "path": "/version", "value": 3}
    ])"));
  EXPECT_EQ(outcome.result, PatchOutcome::Result::TestFailed);
  EXPECT_EQ(outcome.error, "operation 1 (test /version): the value differs");
  EXPECT_TRUE(outcome.document.is_null());
  outcome = apply_json_patch(document, json::parse(R"([{"op": "test", "path": "/missing", "value": 3}])"));
  EXPECT_EQ(outcome.result, PatchOutcome::Result::TestFailed);
  EXPECT_EQ(outcome.error, "operation 0 (test /missing): path does not exist");
}

struct MalformedPatchCase {
  const char* patch;
  const char* error;
};

TEST(ApplyJsonPatchTest, AMalformedPatchNamesTheOperation) {
  json document = {{"a", {{"b", 1}}}, {"list", {1, 2}}, {"s", "x"}};
  const MalformedPatchCase cases[] = {
      {R"({"op": "add"})", "a JSON Patch is an array of operations, not object"},
      {R"([5])", "operation 0: not an object"},
      {R"([{"path": "/a"}])", "operation 0: \"op\" is missing or not a string"},
      {R"([{"op": "test", "path": "/a", "value": {"b": 1}}, {"op": "frob", "path": "/a"}])",
       "operation 1 (frob /a): unknown op"},
      {R"([{"op": "remove"}])", "operation 0 (remove): \"path\" is missing or not a string"},
      {R"([{"op": "remove", "path": "a/b"}])", "operation 0 (remove a/b): \"path\" is not a JSON Pointer"},
      {R"([{"op": "remove", "path": "/a~2"}])", "operation 0 (remove /a~2): \"path\" is not a JSON Pointer"},
      {R"([{"op": "add", "path": "/a/c"}])", "operation 0 (add /a/c): \"value\" is missing"},
      {R"([{"op": "copy", "path": "/a/c"}])", "operation 0 (copy /a/c): \"from\" is missing or not a string"},
      {R"([{"op": "replace", "path": "/a/x", "value": 1}])", "operation 0 (replace /a/x): path does not exist"},
      {R"([{"op": "remove", "path": "/a/x"}])", "operation 0 (remove /a/x): path does not exist"},
      {R"([{"op": "remove", "path": "/list/2"}])", "operation 0 (remove /list/2): path does not exist"},
      {R"([{"op": "remove", "path": "/list/01"}])", "operation 0 (remove /list/01): path does not exist"},
      {R"([{"op": "remove", "path": ""}])", "operation 0 (remove \"\"): the root cannot be removed"},
      {R"([{"op": "add", "path": "/x/y", "value": 1}])",
       "operation 0 (add /x/y): the parent of the path does not exist"},
      {R"([{"op": "add", "path": "/s/y", "value": 1}])",
       "operation 0 (add /s/y): the parent of the path is not an object or an array"},
      {R"([{"op": "add", "path": "/list/3", "value": 1}])",
       "operation 0 (add /list/3): array index \"3\" is out of range or not an index"},
      {R"([{"op": "move", "from": "/a", "path": "/a/b/c"}])", "operation 0 (move /a/b/c): \"from\" contains the path"},
      {R"([{"op": "move", "from": "/nope", "path": "/z"}])", "operation 0 (move /z): \"from\" does not exist"},
  };
  for (const auto& [patch, error] : cases) {
    auto outcome = apply_json_patch(document, json::parse(patch));
    EXPECT_EQ(outcome.result, PatchOutcome::Result::Malformed) << patch;
    EXPECT_EQ(outcome.error, error) << patch;
  }
}

TEST(ApplyJsonPatchTest, AMalformedOperationIsReportedBeforeAnEarlierTestFails) {
  auto outcome = apply_json_patch({{"a", 1}}, json::parse(R"([
      {"op": "test", "path": "/a", "value": 2},
      {"op": "replace", "value": 1}
    ])"));
  EXPECT_EQ(outcome.result, PatchOutcome::Result::Malformed);
  EXPECT_EQ(outcome.error, "operation 1 (replace): \"path\" is missing or not a string");
}

// ---- PATCH rebased with on_conflict = "merge" ------------------------------------------------

TEST(ThreeWayMergeTest, APatchAppliedToTheBaseRebasesOntoCurrent) {
  json base = order_lines({{1, 1}, {2, 1}});
  json current = order_lines({{1, 1}, {2, 5}});
  current["customer"] = "renamed";

  auto json_patched = apply_json_patch(base, json::parse(R"([
      {"op": "test", "path": "/lines/0/id", "value": 1},
      {"op": "replace", "path": "/lines/0/q", "value": 2},
      {"op": "add", "path": "/lines/-", "value": {"id": 3, "q": 1, "note": ""}}
    ])"));
  ASSERT_EQ(json_patched.result, PatchOutcome::Result::Applied) << json_patched.error;
  json expected = order_lines({{1, 2}, {2, 5}, {3, 1}});
  expected["customer"] = "renamed";
  expect_merged(base, current, json_patched.document, kLinesById, expected);

  auto merge_patched = apply_merge_patch(base, {{"customer", "other"}});
  expect_conflicts(base, current, merge_patched.document, kLinesById, MergePointers{"/customer"});
  merge_patched = apply_merge_patch(base, {{"vip", true}});
  expected = current;
  expected["vip"] = true;
  expect_merged(base, current, merge_patched.document, kLinesById, expected);
}

TEST(ParseJsonDocumentTest, RefusesWhatIsNotJsonAndWhatIsNestedTooDeep) {
  EXPECT_EQ(parse_json_document(R"({"a":[1,{"b":"[[[["}]})"), nlohmann::json::parse(R"({"a":[1,{"b":"[[[["}]})"));
  EXPECT_FALSE(parse_json_document("{\"a\":"));
  EXPECT_FALSE(parse_json_document(""));
  std::string deep = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(parse_json_document(deep));
  std::string deeper = "[" + deep + "]";
  EXPECT_FALSE(parse_json_document(deeper));
  // Brackets inside strings (escaped quotes included) do not count.
  EXPECT_TRUE(parse_json_document("[\"\\\"" + std::string(2 * kMaxJsonDepth, '[') + "\"]"));
}

}  // namespace
}  // namespace arbiter
