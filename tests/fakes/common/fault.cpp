#include "tests/fakes/common/fault.hpp"

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace crmsync::fakes {

std::string_view fault_kind_name(FaultKind kind) {
    switch (kind) {
    case FaultKind::status:
        return "status";
    case FaultKind::reset:
        return "reset";
    case FaultKind::truncate:
        return "truncate";
    case FaultKind::malformed:
        return "malformed";
    case FaultKind::slow:
        return "slow";
    }
    return "status";
}

FaultAction read_fault_json(const nlohmann::json& json,
                            const std::function<void(const nlohmann::json&)>& read_match) {
    if (!json.is_object()) {
        throw std::invalid_argument("a fault must be a JSON object");
    }
    FaultAction action;
    try {
        read_match(json);
        const auto kind = json.value("kind", std::string("status"));
        if (kind == "status") {
            action.kind = FaultKind::status;
        } else if (kind == "reset") {
            action.kind = FaultKind::reset;
        } else if (kind == "truncate") {
            action.kind = FaultKind::truncate;
        } else if (kind == "malformed") {
            action.kind = FaultKind::malformed;
        } else if (kind == "slow") {
            action.kind = FaultKind::slow;
        } else {
            throw std::invalid_argument("unknown fault kind '" + kind + "'");
        }
        action.status = json.value("status", 503);
        if (json.contains("retry_after") && !json["retry_after"].is_null()) {
            const auto& value = json["retry_after"];
            action.retry_after = value.is_string() ? value.get<std::string>() : value.dump();
        }
        action.delay_ms = json.value("delay_ms", 0);
        action.count = json.value("count", 1);
    } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument(std::string("bad fault: ") + e.what());
    }
    return action;
}

Fault fault_from_json(const nlohmann::json& json) {
    Fault fault;
    assign_fault_action(fault, read_fault_json(json, [&fault](const nlohmann::json& j) {
                            fault.method = j.value("method", std::string());
                            fault.path_prefix = j.value("path_prefix", std::string());
                        }));
    return fault;
}

} // namespace crmsync::fakes
