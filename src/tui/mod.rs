//! tui layer (see ARCHITECTURE in README).
