//! Retry schedule as data plus a pure delay iterator. OWNER: engine helper.
