//! method layer (see ARCHITECTURE in README).
