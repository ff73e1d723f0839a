//! One integration-test binary (links once): each module is one area.
