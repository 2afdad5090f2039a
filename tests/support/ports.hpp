#pragma once

// Loopback ports for tests.

namespace crmsync::testing {

/// A port on 127.0.0.1 that nothing listens on: bound once by the kernel's choice, then closed,
/// so connecting to it is refused (unless another process grabs it meanwhile, which is rare).
/// Throws std::runtime_error if no socket can be bound.
int closed_port();

} // namespace crmsync::testing
