#include "proxy/http/if_header.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace arbiter {

TEST(IfHeaderTest, NoTagListWithOneStateToken) {
  // RFC 4918 section 10.4.6, the shape a holder sends.
  auto lists = parse_if_header("(<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2>)");
  ASSERT_TRUE(lists);
  ASSERT_EQ(lists->size(), 1u);
  const IfList& list = (*lists)[0];
  EXPECT_FALSE(list.resource);
  ASSERT_EQ(list.conditions.size(), 1u);
  EXPECT_FALSE(list.conditions[0].negated);
  EXPECT_FALSE(list.conditions[0].is_etag);
  EXPECT_EQ(list.conditions[0].value, "urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2");
  EXPECT_TRUE(if_list_applies(list, "/anything"));
}

TEST(IfHeaderTest, StateTokenAndEntityTagInOneList) {
  // Section 10.4.6: (<token> ["I am an ETag"]) (["I am another ETag"]).
  auto lists = parse_if_header(
      "(<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> [\"I am an ETag\"]) ([\"I am another ETag\"])");
  ASSERT_TRUE(lists);
  ASSERT_EQ(lists->size(), 2u);
  ASSERT_EQ((*lists)[0].conditions.size(), 2u);
  EXPECT_TRUE((*lists)[0].conditions[1].is_etag);
  EXPECT_EQ((*lists)[0].conditions[1].value, "\"I am an ETag\"");
  ASSERT_EQ((*lists)[1].conditions.size(), 1u);
  EXPECT_EQ((*lists)[1].conditions[0].value, "\"I am another ETag\"");
}

TEST(IfHeaderTest, NotAndNoLockToken) {
  // Section 10.4.7: (Not <token> <token2>); 10.4.8: (<token>) (Not <DAV:no-lock>).
  auto lists = parse_if_header(
      "(Not <urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> <urn:uuid:58f202ac-22cf-11d1-b12d-002035b29092>)");
  ASSERT_TRUE(lists);
  ASSERT_EQ((*lists)[0].conditions.size(), 2u);
  EXPECT_TRUE((*lists)[0].conditions[0].negated);
  EXPECT_FALSE((*lists)[0].conditions[1].negated);

  lists = parse_if_header("(<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2>) (Not <DAV:no-lock>)");
  ASSERT_TRUE(lists);
  ASSERT_EQ(lists->size(), 2u);
  EXPECT_TRUE((*lists)[1].conditions[0].negated);
  EXPECT_EQ((*lists)[1].conditions[0].value, "DAV:no-lock");

  lists = parse_if_header("(nOt<DAV:no-lock>)");  // any case, no space needed
  ASSERT_TRUE(lists);
  EXPECT_TRUE((*lists)[0].conditions[0].negated);
}

TEST(IfHeaderTest, TaggedListsWithAbsoluteUris) {
  // Section 10.4.9 and 10.4.10.
  auto lists = parse_if_header(
      "<http://www.example.com/specs/> (<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2>) "
      "<http://www.example.com/specs/rfc2518.doc> ([\"4217\"])");
  ASSERT_TRUE(lists);
  ASSERT_EQ(lists->size(), 2u);
  EXPECT_EQ((*lists)[0].resource, "http://www.example.com/specs/");
  EXPECT_EQ((*lists)[1].resource, "http://www.example.com/specs/rfc2518.doc");
  EXPECT_TRUE((*lists)[1].conditions[0].is_etag);
  EXPECT_TRUE(if_list_applies((*lists)[1], "/specs/rfc2518.doc"));
  EXPECT_FALSE(if_list_applies((*lists)[1], "/specs/other.doc"));
  EXPECT_FALSE(if_list_applies((*lists)[0], "/specs/rfc2518.doc"));
}

TEST(IfHeaderTest, ATagGovernsEveryListUpToTheNextTag) {
  // Section 10.4.11: one tag, two lists.
  auto lists = parse_if_header("</resource1> (<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> [W/\"A weak tag\"]) "
                               "([\"strong tag\"]) </resource2> ([\"another strong tag\"])");
  ASSERT_TRUE(lists);
  ASSERT_EQ(lists->size(), 3u);
  EXPECT_EQ((*lists)[0].resource, "/resource1");
  EXPECT_EQ((*lists)[1].resource, "/resource1");
  EXPECT_EQ((*lists)[2].resource, "/resource2");
  EXPECT_EQ((*lists)[0].conditions[1].value, "W/\"A weak tag\"");
  EXPECT_TRUE((*lists)[0].conditions[1].is_etag);
  EXPECT_TRUE(if_list_applies((*lists)[1], "/resource1"));
  EXPECT_FALSE(if_list_applies((*lists)[1], "/resource2"));
}

TEST(IfHeaderTest, TagsApplyByTheirNormalisedPath) {
  auto list_for = [](const std::string& tag) {
    auto lists = parse_if_header("<" + tag + "> (<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2>)");
    EXPECT_TRUE(lists) << tag;
    return lists ? (*lists)[0] : IfList{};
  };
  EXPECT_TRUE(if_list_applies(list_for("/items/1"), "/items/1"));
  EXPECT_TRUE(if_list_applies(list_for("/items/./x/../1"), "/items/1"));
  EXPECT_TRUE(if_list_applies(list_for("/items/1?view=full"), "/items/1"));
  EXPECT_TRUE(if_list_applies(list_for("https://api.example.com:8443/items/1#frag"), "/items/1"));
  EXPECT_TRUE(if_list_applies(list_for("http://api.example.com"), "/"));
  EXPECT_FALSE(if_list_applies(list_for("/items/2"), "/items/1"));
  EXPECT_FALSE(if_list_applies(list_for("items/1"), "/items/1"));  // neither absolute URI nor path
  EXPECT_FALSE(if_list_applies(list_for("urn:x:items/1"), "/items/1"));
}

TEST(IfHeaderTest, WhitespaceIsOptionalBetweenParts) {
  auto lists = parse_if_header("  ( <urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2>\t[ \"x\" ] )  ");
  ASSERT_TRUE(lists);
  ASSERT_EQ((*lists)[0].conditions.size(), 2u);
  EXPECT_EQ((*lists)[0].conditions[1].value, "\"x\"");
}

TEST(IfHeaderTest, MalformedFieldsAreRefused) {
  for (std::string_view bad : {
           "",
           "   ",
           "()",                                    // an empty list
           "(<urn:uuid:a>",                         // unclosed list
           "(<urn:uuid:a)",                         // unclosed coded URL
           "(<>)",                                  // empty coded URL
           "(<urn:uuid a>)",                        // whitespace inside
           "([\"x\")",                              // unclosed entity tag bracket
           "([x])",                                 // entity tag without quotes
           "([\"x])",                               // unclosed quote
           "([\"a\x01b\"])",                         // a control character in the tag
           "(<urn:uuid:a>) </r> (<urn:uuid:b>)",    // untagged, then tagged
           "</r> (<urn:uuid:a>) (<urn:uuid:b>) x",  // garbage after
           "</r> (<urn:uuid:a>) </s>",              // a tag without a list
           "</r>",                                  // a tag alone
           "<urn:uuid:a>",                          // a token outside a list
           "(Not)",                                 // Not without a condition
           "(urn:uuid:a)",                          // a bare URI
           "garbage",
           "(<urn:uuid:a>) garbage",
       }) {
    EXPECT_FALSE(parse_if_header(bad)) << bad;
  }
}

}  // namespace arbiter
