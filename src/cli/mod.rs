//! Command line: clap args -> settings -> commands; all terminal output is here.
//! OWNER: lead.
