//! train layer (see ARCHITECTURE in README).
