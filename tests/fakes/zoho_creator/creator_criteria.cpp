#include "tests/fakes/zoho_creator/creator_criteria.hpp"

#include "tests/fakes/common/fake_time.hpp"

#include <array>
#include <cctype>
#include <vector>

namespace crmsync::fakes {
namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 12> k_months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::int64_t k_ms_per_minute = 60'000;

bool is_time_field(std::string_view field) {
    return field == "Added_Time" || field == "Modified_Time";
}

enum class Op { eq, ne, lt, le, gt, ge, contains, startswith, endswith };

struct Token {
    enum class Kind { name, literal, op, and_, or_, lparen, rparen, dot, end } kind;
    std::string text;
};

std::vector<Token> tokenize(std::string_view s) {
    std::vector<Token> out;
    std::size_t i = 0;
    while (i < s.size()) {
        const char c = s[i];
        if (std::isspace(static_cast<unsigned char>(c)) != 0) {
            ++i;
        } else if (c == '"' || c == '\'') {
            std::string text;
            std::size_t j = i + 1;
            for (; j < s.size() && s[j] != c; ++j) {
                if (s[j] == '\\' && j + 1 < s.size()) {
                    ++j;
                }
                text += s[j];
            }
            if (j >= s.size()) {
                throw CriteriaError("unterminated string at " + std::to_string(i));
            }
            out.push_back({Token::Kind::literal, text});
            i = j + 1;
        } else if (s.substr(i, 2) == "&&") {
            out.push_back({Token::Kind::and_, "&&"});
            i += 2;
        } else if (s.substr(i, 2) == "||") {
            out.push_back({Token::Kind::or_, "||"});
            i += 2;
        } else if (s.substr(i, 2) == "==" || s.substr(i, 2) == "!=" || s.substr(i, 2) == "<=" ||
                   s.substr(i, 2) == ">=") {
            out.push_back({Token::Kind::op, std::string(s.substr(i, 2))});
            i += 2;
        } else if (c == '<' || c == '>') {
            out.push_back({Token::Kind::op, std::string(1, c)});
            ++i;
        } else if (c == '(') {
            out.push_back({Token::Kind::lparen, "("});
            ++i;
        } else if (c == ')') {
            out.push_back({Token::Kind::rparen, ")"});
            ++i;
        } else if (c == '.') {
            out.push_back({Token::Kind::dot, "."});
            ++i;
        } else if (std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' ||
                   c == '+') {
            std::size_t j = i;
            while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) != 0 ||
                                    s[j] == '_' || (j > i && s[j] == '.' && c >= '0' && c <= '9') ||
                                    (j == i && (s[j] == '-' || s[j] == '+')))) {
                ++j;
            }
            const auto text = std::string(s.substr(i, j - i));
            const bool number = std::isdigit(static_cast<unsigned char>(text.back())) != 0 &&
                                text.find_first_not_of("+-0123456789.") == std::string::npos;
            out.push_back({number ? Token::Kind::literal : Token::Kind::name, text});
            i = j;
        } else {
            throw CriteriaError("unexpected '" + std::string(1, c) + "' at " + std::to_string(i));
        }
    }
    out.push_back({Token::Kind::end, ""});
    return out;
}

} // namespace

struct Criteria::Node {
    enum class Kind { all, and_, or_, compare } kind = Kind::all;
    std::unique_ptr<Node> left;
    std::unique_ptr<Node> right;
    std::string field;
    std::string subfield;
    Op op = Op::eq;
    std::string literal;
    std::optional<std::int64_t> literal_time; // for the time fields
};

namespace {

class Parser {
public:
    Parser(std::vector<Token> tokens, int offset) : m_tokens(std::move(tokens)), m_offset(offset) {}

    std::unique_ptr<Criteria::Node> parse() {
        auto node = expr();
        if (peek().kind != Token::Kind::end) {
            throw CriteriaError("unexpected '" + peek().text + "'");
        }
        return node;
    }

private:
    const Token& peek() const { return m_tokens[m_pos]; }
    Token take() { return m_tokens[m_pos++]; }
    Token expect(Token::Kind kind, const char* what) {
        if (peek().kind != kind) {
            throw CriteriaError(std::string("expected ") + what + " before '" + peek().text + "'");
        }
        return take();
    }

    std::unique_ptr<Criteria::Node> join(Criteria::Node::Kind kind,
                                         std::unique_ptr<Criteria::Node> left,
                                         std::unique_ptr<Criteria::Node> right) {
        auto node = std::make_unique<Criteria::Node>();
        node->kind = kind;
        node->left = std::move(left);
        node->right = std::move(right);
        return node;
    }

    std::unique_ptr<Criteria::Node> expr() {
        auto left = conjunction();
        while (peek().kind == Token::Kind::or_) {
            take();
            left = join(Criteria::Node::Kind::or_, std::move(left), conjunction());
        }
        return left;
    }

    std::unique_ptr<Criteria::Node> conjunction() {
        auto left = unary();
        while (peek().kind == Token::Kind::and_) {
            take();
            left = join(Criteria::Node::Kind::and_, std::move(left), unary());
        }
        return left;
    }

    std::unique_ptr<Criteria::Node> unary() {
        if (peek().kind == Token::Kind::lparen) {
            take();
            auto inner = expr();
            expect(Token::Kind::rparen, "')'");
            return inner;
        }
        auto node = std::make_unique<Criteria::Node>();
        node->kind = Criteria::Node::Kind::compare;
        node->field = expect(Token::Kind::name, "a field name").text;
        if (peek().kind == Token::Kind::dot) {
            take();
            const auto name = expect(Token::Kind::name, "a subfield or function").text;
            if (peek().kind == Token::Kind::lparen) {
                take();
                if (name == "contains") {
                    node->op = Op::contains;
                } else if (name == "startswith" || name == "startsWith") {
                    node->op = Op::startswith;
                } else if (name == "endswith" || name == "endsWith") {
                    node->op = Op::endswith;
                } else {
                    throw CriteriaError("unknown function '" + name + "'");
                }
                node->literal = expect(Token::Kind::literal, "a literal").text;
                expect(Token::Kind::rparen, "')'");
                return node;
            }
            node->subfield = name;
        }
        const auto op = expect(Token::Kind::op, "a comparison").text;
        node->op = op == "=="   ? Op::eq
                   : op == "!=" ? Op::ne
                   : op == "<"  ? Op::lt
                   : op == "<=" ? Op::le
                   : op == ">"  ? Op::gt
                                : Op::ge;
        node->literal = expect(Token::Kind::literal, "a literal").text;
        if (is_time_field(node->field)) {
            node->literal_time = parse_creator_time(node->literal, m_offset);
            if (!node->literal_time) {
                throw CriteriaError("'" + node->literal + "' is not a dd-MMM-yyyy HH:mm:ss time");
            }
        }
        return node;
    }

    std::vector<Token> m_tokens;
    std::size_t m_pos = 0;
    int m_offset;
};

template <typename T> bool compare(Op op, const T& a, const T& b) {
    switch (op) {
    case Op::eq:
        return a == b;
    case Op::ne:
        return a != b;
    case Op::lt:
        return a < b;
    case Op::le:
        return a <= b;
    case Op::gt:
        return a > b;
    case Op::ge:
        return a >= b;
    default:
        return false;
    }
}

std::string text_of(const json& value) {
    if (value.is_string()) {
        return value.get<std::string>();
    }
    if (value.is_null()) {
        return {};
    }
    return value.dump();
}

bool evaluate(const Criteria::Node& node, const json& record, const Criteria::TimeOf& time_of) {
    using Kind = Criteria::Node::Kind;
    switch (node.kind) {
    case Kind::all:
        return true;
    case Kind::and_:
        return evaluate(*node.left, record, time_of) && evaluate(*node.right, record, time_of);
    case Kind::or_:
        return evaluate(*node.left, record, time_of) || evaluate(*node.right, record, time_of);
    case Kind::compare:
        break;
    }
    if (node.literal_time) {
        const auto ms = time_of(record, node.field);
        if (!ms) {
            return false;
        }
        // Creator keeps whole seconds.
        return compare(node.op, *ms / 1000, *node.literal_time / 1000);
    }
    json value = record.value(node.field, json());
    if (!node.subfield.empty()) {
        value = value.is_object() ? value.value(node.subfield, json()) : json();
    }
    const auto text = text_of(value);
    switch (node.op) {
    case Op::contains:
        return text.find(node.literal) != std::string::npos;
    case Op::startswith:
        return text.starts_with(node.literal);
    case Op::endswith:
        return text.ends_with(node.literal);
    default:
        return compare(node.op, text, node.literal);
    }
}

} // namespace

std::string format_creator_time(std::int64_t epoch_ms, int utc_offset_minutes) {
    // "2024-01-01T10:00:00.000Z" of the local wall clock, rearranged.
    const auto iso = format_iso_ms(epoch_ms + utc_offset_minutes * k_ms_per_minute);
    const auto month = std::stoi(iso.substr(5, 2));
    return iso.substr(8, 2) + "-" + std::string(k_months[static_cast<std::size_t>(month - 1)]) +
           "-" + iso.substr(0, 4) + " " + iso.substr(11, 8);
}

std::optional<std::int64_t> parse_creator_time(std::string_view text, int utc_offset_minutes) {
    if (text.size() != 11 && text.size() != 20) {
        return std::nullopt;
    }
    if (text[2] != '-' || text[6] != '-' || (text.size() == 20 && text[11] != ' ')) {
        return std::nullopt;
    }
    std::size_t month = 0;
    while (month < k_months.size() && k_months[month] != text.substr(3, 3)) {
        ++month;
    }
    if (month == k_months.size()) {
        return std::nullopt;
    }
    std::string iso = std::string(text.substr(7, 4)) + "-" + (month < 9 ? "0" : "") +
                      std::to_string(month + 1) + "-" + std::string(text.substr(0, 2));
    iso += text.size() == 20 ? "T" + std::string(text.substr(12, 8)) : "T00:00:00";
    const auto local = parse_api_time(iso);
    if (!local) {
        return std::nullopt;
    }
    return *local - utc_offset_minutes * k_ms_per_minute;
}

std::optional<int> parse_utc_offset(std::string_view text) {
    for (const std::string_view prefix : {"UTC", "GMT"}) {
        if (text.starts_with(prefix)) {
            text.remove_prefix(prefix.size());
        }
    }
    if (text.empty() || text == "Z") {
        return 0;
    }
    if (text.size() != 6 || (text[0] != '+' && text[0] != '-') || text[3] != ':') {
        return std::nullopt;
    }
    for (const auto i : {1, 2, 4, 5}) {
        if (text[static_cast<std::size_t>(i)] < '0' || text[static_cast<std::size_t>(i)] > '9') {
            return std::nullopt;
        }
    }
    const int hours = (text[1] - '0') * 10 + (text[2] - '0');
    const int minutes = (text[4] - '0') * 10 + (text[5] - '0');
    if (hours > 14 || minutes > 59) {
        return std::nullopt;
    }
    return (text[0] == '-' ? -1 : 1) * (hours * 60 + minutes);
}

Criteria::Criteria(std::string_view text, int utc_offset_minutes) {
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        m_root = std::make_unique<Node>();
        return;
    }
    m_root = Parser(tokenize(text), utc_offset_minutes).parse();
}

Criteria::~Criteria() = default;
Criteria::Criteria(Criteria&&) noexcept = default;
Criteria& Criteria::operator=(Criteria&&) noexcept = default;

bool Criteria::matches(const json& record, const TimeOf& time_of) const {
    return evaluate(*m_root, record, time_of);
}

} // namespace crmsync::fakes
