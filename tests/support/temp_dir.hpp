#pragma once

// A private temporary directory that is removed with everything in it.

#include <filesystem>
#include <string>

namespace crmsync::testing {

class TempDir {
public:
    /// Creates $TMPDIR/crmsync-test.XXXXXX. Throws std::runtime_error if it cannot.
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return m_path; }
    std::string file(const std::string& name) const { return m_path + "/" + name; }

private:
    std::string m_path;
};

/// A state file path ("state.db", not created yet) in a fresh TempDir.
struct TempState {
    TempDir temp;
    std::filesystem::path dir{temp.path()};
    std::string path() const { return (dir / "state.db").string(); }
};

/// The whole file, "" if it cannot be read.
std::string read_file(const std::string& path);

} // namespace crmsync::testing
