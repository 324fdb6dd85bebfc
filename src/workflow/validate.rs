//! Semantic checks that a schema cannot express. OWNER: workflow helper.
