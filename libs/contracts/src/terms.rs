//! The terms of a text: lower-cased words (letters and digits; `_`, `-`,
//! `.` and every other sign separate words), possessives and plain `-s`
//! plurals folded, and words without subject matter of their own dropped.
//! The gateway's `search` matches and ranks documents by these terms and the
//! controller's baseline checks that its evidence covers a question's terms,
//! so both sides must agree on what a term is: this is the one definition.

use std::collections::BTreeSet;

/// Function words, and words that only frame a question ("which document
/// mentions …", "show me …"). Sorted, for the binary search.
const STOPWORDS: [&str; 98] = [
    "a", "about", "all", "also", "an", "and", "any", "are", "arent", "as", "at", "be", "been",
    "being", "by", "can", "contain", "could", "did", "didnt", "do", "does", "doesnt", "dont",
    "each", "every", "find", "for", "from", "get", "give", "had", "has", "have", "he", "her",
    "his", "how", "hows", "i", "if", "in", "into", "is", "isnt", "it", "its", "just", "know",
    "list", "me", "mention", "my", "no", "not", "of", "on", "or", "our", "please", "say", "she",
    "should", "show", "so", "tell", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "to", "us", "was", "wasnt", "we", "were", "what", "whats",
    "when", "where", "wheres", "which", "who", "whom", "whos", "whose", "why", "with", "would",
    "you", "your",
];

/// The terms of `text` in order, repeats kept: what a document holds.
pub fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    words(text).filter_map(|word| {
        let term = fold_plural(&word);
        (!is_stopword(&word) && !is_stopword(&term)).then_some(term)
    })
}

/// The distinct terms of `text`: what a question asks for.
pub fn term_set(text: &str) -> BTreeSet<String> {
    terms(text).collect()
}

/// Lower-cased words, possessive `'s` dropped and other apostrophes
/// removed (`customer's` → `customer`, `don't` → `dont`).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || is_apostrophe(c)))
        .filter_map(|piece| {
            let piece = piece.trim_matches(is_apostrophe);
            let piece = ["'s", "’s", "'S", "’S"]
                .iter()
                .find_map(|suffix| piece.strip_suffix(suffix))
                .unwrap_or(piece);
            let word: String = piece
                .chars()
                .filter(|c| !is_apostrophe(*c))
                .flat_map(char::to_lowercase)
                .collect();
            (!word.is_empty()).then_some(word)
        })
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '’'
}

fn is_stopword(word: &str) -> bool {
    STOPWORDS.binary_search(&word).is_ok()
}

/// Folds a plain `-s` plural (customers → customer, simulates → simulate);
/// leaves words such as status, analysis or address alone.
fn fold_plural(word: &str) -> String {
    let singular_ending = ["ss", "us", "is"].iter().any(|end| word.ends_with(end));
    if word.chars().count() > 3 && word.ends_with('s') && !singular_ending {
        word[..word.len() - 1].to_owned()
    } else {
        word.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stopwords_are_sorted_and_distinct() {
        assert!(STOPWORDS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn questions_keep_their_subject_words() {
        assert_eq!(
            term_set("What is the customer status and plan tier of customers?")
                .into_iter()
                .collect::<Vec<_>>(),
            ["customer", "plan", "status", "tier"]
        );
        assert_eq!(
            term_set("Which document mentions the customer's status? Does it?")
                .into_iter()
                .collect::<Vec<_>>(),
            ["customer", "document", "status"]
        );
    }

    #[test]
    fn identifiers_split_into_their_words() {
        assert_eq!(
            terms("PECR_CANARY_R cust_public_1 view_id=safe-view.txt").collect::<Vec<_>>(),
            [
                "pecr", "canary", "r", "cust", "public", "1", "view", "id", "safe", "view", "txt"
            ]
        );
    }

    #[test]
    fn documents_keep_repeats_and_fold_plurals() {
        assert_eq!(
            terms("It simulates Restricted content; restricted OPERATORS don't")
                .collect::<Vec<_>>(),
            [
                "simulate",
                "restricted",
                "content",
                "restricted",
                "operator"
            ]
        );
        assert_eq!(
            terms("'quoted' ’tis status analysis").collect::<Vec<_>>(),
            ["quoted", "tis", "status", "analysis"]
        );
        assert_eq!(terms("").count(), 0);
        assert_eq!(terms("— ? the of").count(), 0);
    }
}
