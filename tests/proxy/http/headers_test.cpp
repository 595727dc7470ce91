#include "proxy/http/headers.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace arbiter {
namespace {

std::vector<std::pair<std::string, std::string>> fields_of(const HeaderList& headers) {
  std::vector<std::pair<std::string, std::string>> out;
  for (HeaderField field : headers) out.emplace_back(field.name, field.value);
  return out;
}

using Fields = std::vector<std::pair<std::string, std::string>>;

TEST(IequalsTest, ComparesAsciiCaseInsensitively) {
  EXPECT_TRUE(iequals("Content-Type", "content-TYPE"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("Content-Type", "Content-Typ"));
  EXPECT_FALSE(iequals("a", "b"));
  // '[' and '{' differ by the same 32 as 'A' and 'a', but are not letters.
  EXPECT_FALSE(iequals("[", "{"));
  EXPECT_FALSE(iequals("@", "`"));
}

TEST(HeaderListTest, StartsEmpty) {
  HeaderList headers;
  EXPECT_TRUE(headers.empty());
  EXPECT_EQ(headers.size(), 0u);
  EXPECT_EQ(headers.byte_size(), 0u);
  EXPECT_FALSE(headers.find("Host").has_value());
  EXPECT_EQ(headers.begin(), headers.end());
}

TEST(HeaderListTest, KeepsOrderAndCase) {
  HeaderList headers{{"Host", "example.com"}, {"accept", "*/*"}, {"X-Trace", "1"}};
  EXPECT_EQ(headers.size(), 3u);
  EXPECT_FALSE(headers.empty());
  EXPECT_EQ(fields_of(headers), (Fields{{"Host", "example.com"}, {"accept", "*/*"}, {"X-Trace", "1"}}));
  HeaderField second = headers.at(1);
  EXPECT_EQ(second.name, "accept");
  EXPECT_EQ(second.value, "*/*");
}

TEST(HeaderListTest, FindIsCaseInsensitiveAndReturnsTheFirst) {
  HeaderList headers{{"Via", "1.1 a"}, {"Host", "example.com"}, {"via", "1.1 b"}};
  ASSERT_TRUE(headers.find("VIA").has_value());
  EXPECT_EQ(*headers.find("VIA"), "1.1 a");
  EXPECT_EQ(*headers.find("host"), "example.com");
  EXPECT_FALSE(headers.find("Hos").has_value());
  EXPECT_EQ(headers.count("Via"), 2u);
  EXPECT_EQ(headers.count("Host"), 1u);
  EXPECT_EQ(headers.count("Accept"), 0u);
  EXPECT_TRUE(headers.contains("HOST"));
  EXPECT_FALSE(headers.contains("Accept"));
}

TEST(HeaderListTest, EmptyValueIsPresent) {
  HeaderList headers{{"X-Empty", ""}};
  ASSERT_TRUE(headers.find("x-empty").has_value());
  EXPECT_EQ(*headers.find("x-empty"), "");
  EXPECT_TRUE(headers.contains("X-Empty"));
}

TEST(HeaderListTest, SetReplacesEveryFieldOfThatName) {
  HeaderList headers{{"Cache-Control", "no-cache"}, {"Host", "h"}, {"cache-control", "private"}};
  headers.set("Cache-Control", "max-age=60");
  EXPECT_EQ(headers.count("cache-control"), 1u);
  EXPECT_EQ(*headers.find("Cache-Control"), "max-age=60");
  EXPECT_EQ(headers.size(), 2u);
  EXPECT_EQ(*headers.find("Host"), "h");
}

TEST(HeaderListTest, SetAppendsWhenAbsent) {
  HeaderList headers{{"Host", "h"}};
  headers.set("ETag", "\"abc\"");
  EXPECT_EQ(fields_of(headers), (Fields{{"Host", "h"}, {"ETag", "\"abc\""}}));
}

TEST(HeaderListTest, RemoveCountsWhatItRemoved) {
  HeaderList headers{{"Connection", "close"}, {"Host", "h"}, {"connection", "x"}, {"TE", "trailers"}};
  EXPECT_EQ(headers.remove("CONNECTION"), 2u);
  EXPECT_EQ(headers.remove("Upgrade"), 0u);
  EXPECT_EQ(fields_of(headers), (Fields{{"Host", "h"}, {"TE", "trailers"}}));
}

TEST(HeaderListTest, ClearEmptiesAndTheListIsReusable) {
  HeaderList headers{{"Host", "h"}, {"Accept", "*/*"}};
  headers.clear();
  EXPECT_TRUE(headers.empty());
  EXPECT_EQ(headers.byte_size(), 0u);
  EXPECT_FALSE(headers.contains("Host"));
  headers.add("Host", "again");
  EXPECT_EQ(fields_of(headers), (Fields{{"Host", "again"}}));
}

TEST(HeaderListTest, ByteSizeCountsNamesAndValues) {
  HeaderList headers;
  headers.add("Host", "example.com");
  EXPECT_EQ(headers.byte_size(), 15u);
  headers.add("A", "");
  EXPECT_EQ(headers.byte_size(), 16u);
}

TEST(HeaderListTest, BuildsFieldsFromPieces) {
  HeaderList headers;
  headers.begin_field();
  headers.append_name("Cont");
  headers.append_name("ent-Type");
  headers.append_value("text/");
  headers.append_value("html");
  headers.begin_field();
  headers.append_name("X-Id");
  headers.append_value("7");
  EXPECT_EQ(fields_of(headers), (Fields{{"Content-Type", "text/html"}, {"X-Id", "7"}}));
  EXPECT_EQ(*headers.find("content-type"), "text/html");
  EXPECT_EQ(headers.byte_size(), 26u);
}

TEST(HeaderListTest, FieldWithNameAndNoValueYet) {
  HeaderList headers;
  headers.begin_field();
  headers.append_name("X-Later");
  ASSERT_TRUE(headers.find("x-later").has_value());
  EXPECT_EQ(*headers.find("x-later"), "");
}

TEST(HeaderListTest, IteratorWalksEveryField) {
  HeaderList headers{{"A", "1"}, {"B", "2"}};
  auto it = headers.begin();
  EXPECT_EQ((*it).name, "A");
  auto previous = it++;
  EXPECT_EQ((*previous).name, "A");
  EXPECT_EQ((*it).name, "B");
  ++it;
  EXPECT_EQ(it, headers.end());
}

std::vector<std::string> elements_of(std::string_view value) {
  std::vector<std::string> out;
  for_each_list_element(value, [&](std::string_view element) { out.emplace_back(element); });
  return out;
}

TEST(ForEachListElementTest, SplitsTrimsAndSkipsEmptyElements) {
  using List = std::vector<std::string>;
  EXPECT_EQ(elements_of("gzip"), (List{"gzip"}));
  EXPECT_EQ(elements_of("a, b ,,c"), (List{"a", "b", "c"}));
  EXPECT_EQ(elements_of("a,b,"), (List{"a", "b"}));
  EXPECT_EQ(elements_of(",a"), (List{"a"}));
  EXPECT_EQ(elements_of("\tx\t, y"), (List{"x", "y"}));
  EXPECT_EQ(elements_of(" a b ,c"), (List{"a b", "c"}));  // inner whitespace belongs to the element
  EXPECT_EQ(elements_of("W/\"1\", \"2\""), (List{"W/\"1\"", "\"2\""}));
}

TEST(ForEachListElementTest, NothingForEmptyLists) {
  EXPECT_TRUE(elements_of("").empty());
  EXPECT_TRUE(elements_of(" , ,\t").empty());
  EXPECT_TRUE(elements_of(",").empty());
}

TEST(ForEachListElementTest, ElementsAreViewsIntoTheValue) {
  const std::string value = "close, upgrade";
  std::vector<std::string_view> views;
  for_each_list_element(value, [&](std::string_view element) { views.push_back(element); });
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0].data(), value.data());
  EXPECT_EQ(views[1].data(), value.data() + 7);
  EXPECT_EQ(views[1], "upgrade");
}

}  // namespace
}  // namespace arbiter
