//! `ticketlake.toml`: any text either parses into a valid configuration or gives an
//! error; a configuration that parses prints back to TOML that parses to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ticketlake::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text, "fuzz.toml") {
        let printed = toml::to_string(&config).expect("a configuration prints as TOML");
        let again = Config::parse(&printed, "printed").expect("the printed configuration parses");
        assert_eq!(
            config, again,
            "the configuration changed on its way through TOML"
        );
    }
});
