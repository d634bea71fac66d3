#include "vmm/vmm_config/json_reader.h"

#include <gtest/gtest.h>

#include "vmm/vmm_config/rust_format.h"

namespace ember::vmm::json {
namespace {

// A test schema shaped like Firecracker's snapshot load body, whose serde
// errors (with positions) are pinned by upstream unit tests.
struct Backend {
  std::string path, type;
};

void read_load(JsonReader& r) {
  static constexpr FieldSpec kOuter[] = {{"snapshot_path", true}, {"mem_backend", false}};
  static constexpr FieldSpec kInner[] = {{"backend_path", true}, {"backend_type", true}};
  static constexpr const char* kTypes[] = {"File", "Uffd"};
  r.read_struct("struct LoadSnapshotConfig", kOuter, true, [&](size_t f) {
    if (f == 0) {
      r.read_string();
      return;
    }
    r.read_struct("struct MemBackendConfig", kInner, true, [&](size_t g) {
      if (g == 0) {
        r.read_string();
      } else {
        r.read_unit_variant(kTypes);
      }
    });
  });
  r.end();
}

std::string error_of(std::string_view text, void (*read)(JsonReader&)) {
  JsonReader r(text);
  try {
    read(r);
  } catch (const JsonError& e) {
    return e.what();
  }
  return "no error";
}

TEST(JsonReader, MissingNestedFieldIsReportedAtTheClosingBraceLikeSerde) {
  const char* body = R"({
            "snapshot_path": "foo",
            "mem_backend": {
                "backend_path": "bar"
            }
        })";
  EXPECT_EQ(error_of(body, read_load), "missing field `backend_type` at line 5 column 13");
}

TEST(JsonReader, TrailingCommaInObject) {
  const char* body = R"({
            "snapshot_path": "foo",
            "mem_backend": {
                "backend_type": "File",
            }
        })";
  EXPECT_EQ(error_of(body, read_load), "trailing comma at line 5 column 13");
}

TEST(JsonReader, MissingOuterField) {
  const char* body = R"({
            "mem_backend": {
                "backend_path": "bar",
                "backend_type": "Uffd"
            }
        })";
  EXPECT_EQ(error_of(body, read_load), "missing field `snapshot_path` at line 6 column 9");
}

TEST(JsonReader, UnknownVariantListsAlternatives) {
  EXPECT_EQ(
      error_of(R"({"snapshot_path":"a","mem_backend":{"backend_path":"b","backend_type":"foo"}})",
               read_load),
      "unknown variant `foo`, expected `File` or `Uffd` at line 1 column 75");
}

TEST(JsonReader, UnknownFieldIsPositionedAfterTheKey) {
  EXPECT_EQ(error_of(R"({"foo": 1})", read_load),
            "unknown field `foo`, expected `snapshot_path` or `mem_backend` at line 1 column 6");
}

TEST(JsonReader, EmptyInput) {
  EXPECT_EQ(error_of("", read_load), "EOF while parsing a value at line 1 column 0");
}

TEST(JsonReader, SyntaxErrors) {
  EXPECT_EQ(error_of("{\"snapshot_path\" 1}", read_load), "expected `:` at line 1 column 18");
  EXPECT_EQ(error_of("{\"snapshot_path\":\"a\" \"x\"}", read_load),
            "expected `,` or `}` at line 1 column 22");
  EXPECT_EQ(error_of("{1:2}", read_load), "key must be a string at line 1 column 2");
  EXPECT_EQ(error_of("{\"snapshot_path\":\"a\"} x", read_load),
            "trailing characters at line 1 column 23");
  EXPECT_EQ(error_of("{\"snapshot_path\":\"a", read_load),
            "EOF while parsing a string at line 1 column 19");
  EXPECT_EQ(error_of("{\"snapshot_path\":\"a\\q\"}", read_load),
            "invalid escape at line 1 column 21");
  EXPECT_EQ(error_of("{\"snapshot_path\":\"a\x01\"}", read_load),
            "control character (\\u0000-\\u001F) found while parsing a string at line 1 column 20");
  EXPECT_EQ(error_of("{\"snapshot_path\":\"\xff\"}", read_load),
            "invalid unicode code point at line 1 column 20");
  EXPECT_EQ(error_of("{", read_load), "EOF while parsing an object at line 1 column 1");
  EXPECT_EQ(error_of("{\"snapshot_path\":", read_load),
            "EOF while parsing a value at line 1 column 17");
  EXPECT_EQ(error_of("{\"snapshot_path\":tru}", read_load), "expected ident at line 1 column 21");
}

TEST(JsonReader, InvalidTypesNameWhatWasFound) {
  EXPECT_EQ(error_of("5", read_load),
            "invalid type: integer `5`, expected struct LoadSnapshotConfig at line 1 column 1");
  EXPECT_EQ(error_of("[1]", read_load),
            "invalid type: sequence, expected struct LoadSnapshotConfig at line 1 column 0");
  EXPECT_EQ(error_of(R"({"snapshot_path": null})", read_load),
            "invalid type: null, expected a string at line 1 column 22");
  EXPECT_EQ(error_of(R"({"snapshot_path": 1.5})", read_load),
            "invalid type: floating point `1.5`, expected a string at line 1 column 21");
  EXPECT_EQ(error_of(R"({"snapshot_path": {"a":1}})", read_load),
            "invalid type: map, expected a string at line 1 column 18");
}

TEST(JsonReader, DuplicateField) {
  EXPECT_EQ(error_of(R"({"snapshot_path":"a","snapshot_path":"b"})", read_load),
            "duplicate field `snapshot_path` at line 1 column 36");
}

void read_u8_field(JsonReader& r) {
  static constexpr FieldSpec kFields[] = {{"n", true}};
  r.read_struct("struct N", kFields, true, [&](size_t) { r.read_uint("u8", 255); });
  r.end();
}

TEST(JsonReader, IntegerRangeAndSignMatchSerde) {
  EXPECT_EQ(error_of(R"({"n": 300})", read_u8_field),
            "invalid value: integer `300`, expected u8 at line 1 column 9");
  EXPECT_EQ(error_of(R"({"n": -2})", read_u8_field),
            "invalid value: integer `-2`, expected u8 at line 1 column 8");
  EXPECT_EQ(error_of(R"({"n": "2"})", read_u8_field),
            "invalid type: string \"2\", expected u8 at line 1 column 9");
  EXPECT_EQ(
      error_of(R"({"n": 18446744073709551616})", read_u8_field),
      "invalid type: floating point `1.8446744073709552e19`, expected u8 at line 1 column 26");
  EXPECT_EQ(error_of(R"({"n": -0})", read_u8_field),
            "invalid type: floating point `-0.0`, expected u8 at line 1 column 8");
  EXPECT_EQ(error_of(R"({"n": 01})", read_u8_field), "invalid number at line 1 column 8");
  EXPECT_EQ(error_of(R"({"n": 1.})", read_u8_field), "invalid number at line 1 column 9");
  EXPECT_EQ(error_of(R"({"n": 1e999})", read_u8_field), "number out of range at line 1 column 11");
  EXPECT_EQ(error_of(R"({"n": true})", read_u8_field),
            "invalid type: boolean `true`, expected u8 at line 1 column 10");
}

void read_ignoring(JsonReader& r) {
  static constexpr FieldSpec kFields[] = {{"keep", false}};
  r.read_struct("struct S", kFields, false, [&](size_t) { r.read_bool(); });
  r.end();
}

TEST(JsonReader, IgnoredValuesAreStillSyntaxChecked) {
  EXPECT_EQ(error_of(R"({"x": [1, {"a": [true, null, "s\n"]}], "keep": true})", read_ignoring),
            "no error");
  EXPECT_EQ(error_of(R"({"x": [1 2]})", read_ignoring), "expected `,` or `]` at line 1 column 10");
  EXPECT_EQ(error_of(R"({"x": {"a" 1}})", read_ignoring), "expected `:` at line 1 column 12");
  EXPECT_EQ(error_of(R"({"x": [1,]})", read_ignoring), "expected value at line 1 column 10");
}

TEST(JsonReader, DeepNestingOfIgnoredValuesDoesNotRecurse) {
  std::string deep = "{\"x\": " + std::string(200000, '[') + std::string(200000, ']') + "}";
  EXPECT_EQ(error_of(deep, read_ignoring), "no error");
}

TEST(JsonReader, CustomErrorsArePlacedAtTheEnclosingObjectEnd) {
  auto read = [](JsonReader& r) {
    static constexpr FieldSpec kFields[] = {{"mac", true}, {"other", false}};
    r.read_struct("struct S", kFields, true, [&](size_t f) {
      std::string s = r.read_string();
      if (f == 0 && s == "bad") JsonReader::fail("The provided MAC address is invalid.");
    });
    r.end();
  };
  // Last field: serde_json consumes the `}` before placing the error.
  EXPECT_EQ(error_of(R"({"mac": "bad"})", read),
            "The provided MAC address is invalid. at line 1 column 14");
  // Not last: end_map fails on `,` without consuming it.
  EXPECT_EQ(error_of(R"({"mac": "bad", "other": "x"})", read),
            "The provided MAC address is invalid. at line 1 column 13");
}

TEST(JsonReader, StringEscapesAndSurrogates) {
  JsonReader r(R"("a\u00e9\ud83d\ude00\n")");
  EXPECT_EQ(r.read_string(), "a\xc3\xa9\xf0\x9f\x98\x80\n");
  JsonReader bad(R"("\udc00")");
  try {
    bad.read_string();
    FAIL();
  } catch (const JsonError& e) {
    EXPECT_STREQ(e.what(), "lone leading surrogate in hex escape at line 1 column 7");
  }
}

TEST(JsonReader, UnitVariantAlsoAcceptsTheTaggedForm) {
  static constexpr const char* kVariants[] = {"A", "B", "C"};
  JsonReader r(R"({"B": null})");
  EXPECT_EQ(r.read_unit_variant(kVariants), 1u);
  JsonReader bad(R"("D")");
  try {
    bad.read_unit_variant(kVariants);
    FAIL();
  } catch (const JsonError& e) {
    EXPECT_STREQ(e.what(), "unknown variant `D`, expected one of `A`, `B`, `C` at line 1 column 3");
  }
}

TEST(RustFormat, FloatsLookLikeSerdeJson) {
  EXPECT_EQ(rust_float(1.5), "1.5");
  EXPECT_EQ(rust_float(100.0), "100.0");
  EXPECT_EQ(rust_float(1e16), "1e16");
  EXPECT_EQ(rust_float(0.001234), "0.001234");
  EXPECT_EQ(rust_float(1e-7), "1e-7");
  EXPECT_EQ(rust_float(-2.5e20), "-2.5e20");
}

TEST(RustFormat, DebugStringsEscapeLikeRust) {
  EXPECT_EQ(rust_debug_str("a\"b\\c\n\t\x01"), "\"a\\\"b\\\\c\\n\\t\\u{1}\"");
  EXPECT_EQ(rust_io_error(2), "No such file or directory (os error 2)");
}

}  // namespace
}  // namespace ember::vmm::json
