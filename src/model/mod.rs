//! model layer (see ARCHITECTURE in README).
