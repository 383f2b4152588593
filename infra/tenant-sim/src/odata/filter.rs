//! `$filter` expressions: the OData subset Graph's security APIs document
//! (`eq ne gt ge lt le in and or not`, parentheses), parsed into a tree.

use crate::time::Instant;

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    DateTime(Instant),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp { property: String, op: CmpOp, value: Literal },
    In { property: String, values: Vec<Literal> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid filter clause: {0}")]
pub struct FilterSyntaxError(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Bare(String),
    LParen,
    RParen,
    Comma,
}

fn lex(src: &str) -> Result<Vec<(usize, Token)>, FilterSyntaxError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' => i += 1,
            b'(' => {
                out.push((i, Token::LParen));
                i += 1;
            }
            b')' => {
                out.push((i, Token::RParen));
                i += 1;
            }
            b',' => {
                out.push((i, Token::Comma));
                i += 1;
            }
            b'\'' => {
                let start = i;
                i += 1;
                let mut s = String::new();
                loop {
                    match bytes.get(i) {
                        None => return Err(FilterSyntaxError(format!("unterminated string literal at position {start}"))),
                        // OData escapes a quote inside a string by doubling it.
                        Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(_) => {
                            let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                out.push((start, Token::Str(s)));
            }
            _ => {
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t' | b'(' | b')' | b',' | b'\'') {
                    i += 1;
                }
                let word = &src[start..i];
                let is_ident = word.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '.');
                out.push((start, if is_ident { Token::Ident(word.to_owned()) } else { Token::Bare(word.to_owned()) }));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Token)>,
    pos: usize,
    src_len: usize,
}

/// Parses a `$filter` value. Keywords are case-sensitive, as in OData.
pub fn parse(src: &str) -> Result<Expr, FilterSyntaxError> {
    let mut p = Parser { toks: lex(src)?, pos: 0, src_len: src.len() };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(p.unexpected("end of expression"));
    }
    Ok(e)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src_len, |(i, _)| *i)
    }

    fn unexpected(&self, wanted: &str) -> FilterSyntaxError {
        let found = match self.peek() {
            None => "end of input".to_owned(),
            Some(Token::Ident(s) | Token::Bare(s)) => format!("'{s}'"),
            Some(Token::Str(s)) => format!("string '{s}'"),
            Some(Token::LParen) => "'('".to_owned(),
            Some(Token::RParen) => "')'".to_owned(),
            Some(Token::Comma) => "','".to_owned(),
        };
        FilterSyntaxError(format!("syntax error at position {}: expected {wanted}, found {found}", self.at()))
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Token::Ident(s)) if s == kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, FilterSyntaxError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterSyntaxError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterSyntaxError> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Token::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.peek() != Some(&Token::RParen) {
                return Err(self.unexpected("')'"));
            }
            self.pos += 1;
            return Ok(e);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, FilterSyntaxError> {
        let property = match self.peek() {
            Some(Token::Ident(s)) if !is_keyword(s) => s.clone(),
            _ => return Err(self.unexpected("a property name")),
        };
        self.pos += 1;
        if self.peek() == Some(&Token::LParen) {
            return Err(FilterSyntaxError(format!("function '{property}' is not supported")));
        }
        let op = match self.peek() {
            Some(Token::Ident(s)) => match s.as_str() {
                "eq" => CmpOp::Eq,
                "ne" => CmpOp::Ne,
                "gt" => CmpOp::Gt,
                "ge" => CmpOp::Ge,
                "lt" => CmpOp::Lt,
                "le" => CmpOp::Le,
                "in" => {
                    self.pos += 1;
                    return self.in_list(property);
                }
                _ => return Err(self.unexpected("a comparison operator (eq, ne, gt, ge, lt, le, in)")),
            },
            _ => return Err(self.unexpected("a comparison operator (eq, ne, gt, ge, lt, le, in)")),
        };
        self.pos += 1;
        let value = self.literal()?;
        Ok(Expr::Cmp { property, op, value })
    }

    fn in_list(&mut self, property: String) -> Result<Expr, FilterSyntaxError> {
        if self.peek() != Some(&Token::LParen) {
            return Err(self.unexpected("'(' after 'in'"));
        }
        self.pos += 1;
        let mut values = vec![self.literal()?];
        while self.peek() == Some(&Token::Comma) {
            self.pos += 1;
            values.push(self.literal()?);
        }
        if self.peek() != Some(&Token::RParen) {
            return Err(self.unexpected("')' closing the 'in' list"));
        }
        self.pos += 1;
        Ok(Expr::In { property, values })
    }

    fn literal(&mut self) -> Result<Literal, FilterSyntaxError> {
        let lit = match self.peek() {
            Some(Token::Str(s)) => Literal::Str(s.clone()),
            Some(Token::Ident(s)) if s == "null" => Literal::Null,
            Some(Token::Ident(s)) if s == "true" => Literal::Bool(true),
            Some(Token::Ident(s)) if s == "false" => Literal::Bool(false),
            Some(Token::Bare(s) | Token::Ident(s)) => {
                if let Ok(n) = s.parse::<f64>() {
                    Literal::Num(n)
                } else if s.contains('T') && s.len() >= 19 {
                    let t = Instant::parse(s).map_err(|_| {
                        FilterSyntaxError(format!(
                            "'{s}' at position {} is not a valid Edm.DateTimeOffset (use 2026-11-26T09:00:00.1234567Z)",
                            self.at()
                        ))
                    })?;
                    Literal::DateTime(t)
                } else {
                    return Err(self.unexpected("a literal value"));
                }
            }
            _ => return Err(self.unexpected("a literal value")),
        };
        self.pos += 1;
        Ok(lit)
    }
}

fn is_keyword(s: &str) -> bool {
    matches!(s, "and" | "or" | "not" | "eq" | "ne" | "gt" | "ge" | "lt" | "le" | "in")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Literal {
        Literal::DateTime(Instant::parse(s).unwrap_or_default())
    }

    #[test]
    fn window_filter_with_seven_digits() {
        let e = parse("lastUpdateDateTime ge 2026-11-26T09:00:00.1234567Z and lastUpdateDateTime lt 2026-11-26T10:00:00Z");
        assert_eq!(
            e,
            Ok(Expr::And(
                Box::new(Expr::Cmp { property: "lastUpdateDateTime".into(), op: CmpOp::Ge, value: t("2026-11-26T09:00:00.1234567Z") }),
                Box::new(Expr::Cmp { property: "lastUpdateDateTime".into(), op: CmpOp::Lt, value: t("2026-11-26T10:00:00Z") }),
            ))
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let e = parse("severity eq 'high' or severity eq 'medium' and status eq 'new'");
        assert!(matches!(e, Ok(Expr::Or(_, r)) if matches!(*r, Expr::And(_, _))));
    }

    #[test]
    fn in_lists_parentheses_and_not() {
        let e = parse("not (severity in ('high', 'medium')) and assignedTo eq null");
        assert!(matches!(e, Ok(Expr::And(l, _)) if matches!(*l, Expr::Not(_))));
    }

    #[test]
    fn doubled_quotes_escape_a_quote() {
        let e = parse("assignedTo eq 'o''brien@contoso.com'");
        assert!(matches!(e, Ok(Expr::Cmp { value: Literal::Str(s), .. }) if s == "o'brien@contoso.com"));
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = parse("severity eq").err().map(|e| e.0);
        assert_eq!(e.as_deref(), Some("syntax error at position 11: expected a literal value, found end of input"));
        assert!(parse("severity === 'high'").is_err());
        assert!(parse("startswith(title, 'x')").is_err());
        assert!(parse("(severity eq 'high'").is_err());
        assert!(parse("lastUpdateDateTime ge 2026-11-26T09:00:00.123456789Z").is_err());
    }
}
