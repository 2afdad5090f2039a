// PostgreSQL's binary COPY encoder (drivers::postgres::append_binary_field): any text it takes
// for a type reads back, decoded independently, as what the server would print after reading
// that text as text; the batch check (binary_encodable) takes exactly what it takes.

#include "drivers/postgres/binary_copy.hpp"
#include "tests/support/pg_binary_decode.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

using namespace crmsync;
using drivers::postgres::BinaryType;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const sql::Value value = std::string(reinterpret_cast<const char*>(data), size);
    for (const auto type :
         {BinaryType::int2, BinaryType::int4, BinaryType::int8, BinaryType::numeric,
          BinaryType::boolean, BinaryType::timestamp, BinaryType::bytes, BinaryType::jsonb}) {
        std::string out;
        const bool took = drivers::postgres::append_binary_field(out, value, type);
        if (drivers::postgres::binary_encodable({{&value}}, {type}) != took) {
            std::abort();
        }
        if (!took) {
            if (!out.empty()) {
                std::abort();
            }
            continue;
        }
        const auto printed = testing::decode_pg_binary(out, type);
        if (!printed || *printed != testing::expected_pg_text(*value, type)) {
            std::abort();
        }
    }
    return 0;
}
