//! A device as people name it ("Chrome on Linux"), from a `User-Agent` string, by woothee (a
//! well-kept parser with the patterns of the browsers and systems in use).

use woothee::parser::Parser;

const UNKNOWN: &str = "UNKNOWN";

/// "Browser on system", as much of it as the `User-Agent` tells; for a client that is not a
/// browser (`curl/8.5.0`, an SDK), its first product token.
pub fn device_name(user_agent: &str) -> String {
    let parsed = Parser::new().parse(user_agent);
    // Crawlers and libraries ("HTTP Library") say more by their own name.
    let browser = parsed.filter(|p| matches!(p.category, "pc" | "smartphone" | "mobilephone" | "appliance"));
    let (name, os) = browser.as_ref().map_or((UNKNOWN, UNKNOWN), |p| (p.name, p.os));
    match (name, os) {
        (UNKNOWN, UNKNOWN) => match user_agent.split_whitespace().next() {
            Some(product) => product.chars().take(64).collect(),
            None => "Unknown device".into(),
        },
        (name, UNKNOWN) => name.to_owned(),
        (UNKNOWN, os) => format!("A browser on {os}"),
        (name, os) => format!("{name} on {os}"),
    }
}

#[cfg(test)]
mod tests {
    use super::device_name;

    #[test]
    fn browsers_are_named_with_their_system_and_other_clients_by_their_product() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                      Chrome/120.0.0.0 Safari/537.36";
        assert_eq!(device_name(chrome), "Chrome on Linux");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(device_name(iphone), "Safari on iPhone");
        assert_eq!(device_name("curl/8.5.0"), "curl/8.5.0");
        assert_eq!(device_name(""), "Unknown device");
    }
}
