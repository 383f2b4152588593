//! Why a live response failed on the device, told apart by what Microsoft returns.
//!
//! A failed machine action carries `errorHResult` (run-live-response.md shows it on the action)
//! and each command's `errors` (machineaction.md). Microsoft documents neither which HRESULT
//! comes with which failure nor the texts, so the Windows meaning of the HRESULT decides
//! ([MS-ERREF] 2.1: Win32 codes as 0x8007xxxx, trust codes 0x800Bxxxx), then words in the
//! text, and a failure neither names is reported as Microsoft worded it, never as "not found".

/// What a failed action comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionFailure {
    /// No file at the path (GetFile), or nothing in the quarantine to restore.
    NotFound,
    /// The file is larger than GetFile collects (live-response.md: 3 GB).
    TooLarge,
    /// The script was refused for its signature: the tenant's "Live Response unsigned script
    /// execution" is off.
    Unsigned,
    /// A command ran out of time (live-response.md: RunScript 10 minutes, GetFile 30).
    TimedOut,
    /// Anything else: Microsoft's own words.
    Other,
}

const FILE_NOT_FOUND: u32 = 0x8007_0002;
const PATH_NOT_FOUND: u32 = 0x8007_0003;
const FILE_TOO_LARGE: u32 = 0x8007_00DF;
const TIMEOUT: u32 = 0x8007_05B4;
const WAIT_TIMEOUT: u32 = 0x8007_0102;
/// TRUST_E_NOSIGNATURE, TRUST_E_SUBJECT_NOT_TRUSTED, TRUST_E_BAD_DIGEST, CERT_E_UNTRUSTEDROOT.
const SIGNATURE: [u32; 4] = [0x800B_0100, 0x800B_0004, 0x8009_6010, 0x800B_0109];

/// The failure `hresult` (as the API gives it, a signed 32-bit number) and `errors` describe.
pub fn classify(hresult: Option<i64>, errors: &[String]) -> ActionFailure {
    let code = hresult.filter(|h| *h != 0).map(|h| h as i32 as u32);
    match code {
        Some(FILE_NOT_FOUND | PATH_NOT_FOUND) => return ActionFailure::NotFound,
        Some(FILE_TOO_LARGE) => return ActionFailure::TooLarge,
        Some(TIMEOUT | WAIT_TIMEOUT) => return ActionFailure::TimedOut,
        Some(c) if SIGNATURE.contains(&c) => return ActionFailure::Unsigned,
        _ => {}
    }
    let text = errors.join(" ").to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
    // Not-found words first: the text names the path, and a file may be called signature.dll.
    if has(&["not found", "cannot find", "can't find", "does not exist", "doesn't exist", "no such file"]) {
        ActionFailure::NotFound
    } else if has(&["too large", "larger than", "size limit", "exceeds the limit", "exceeds the maximum"]) {
        ActionFailure::TooLarge
    } else if has(&["timed out", "timeout", "time out"]) {
        ActionFailure::TimedOut
    } else if has(&["not signed", "unsigned", "signature"]) {
        ActionFailure::Unsigned
    } else {
        ActionFailure::Other
    }
}

/// How an action's failure reads in a job's detail: Microsoft's words and code, bounded.
pub fn microsofts_words(hresult: Option<i64>, errors: &[String]) -> String {
    let text: String = errors.join("; ").chars().take(600).collect();
    match (hresult.filter(|h| *h != 0), text.is_empty()) {
        (Some(h), true) => format!("errorHResult 0x{:08X}", h as i32 as u32),
        (Some(h), false) => format!("{text} (errorHResult 0x{:08X})", h as i32 as u32),
        (None, true) => "no error given".into(),
        (None, false) => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_is_told_apart_by_its_hresult_then_by_its_words() {
        let none: &[String] = &[];
        assert_eq!(classify(Some(-2_147_024_894), none), ActionFailure::NotFound, "0x80070002");
        assert_eq!(classify(Some(0x8007_0003_u32 as i32 as i64), none), ActionFailure::NotFound);
        assert_eq!(classify(Some(-2_147_024_673), none), ActionFailure::TooLarge, "0x800700DF");
        assert_eq!(classify(Some(-2_146_762_496), none), ActionFailure::Unsigned, "0x800B0100");
        assert_eq!(classify(Some(0x8007_05B4_u32 as i32 as i64), none), ActionFailure::TimedOut);
        let words = |s: &str| vec![s.to_owned()];
        assert_eq!(classify(None, &words("The script is not signed")), ActionFailure::Unsigned);
        assert_eq!(classify(Some(0), &words("Command timed out")), ActionFailure::TimedOut);
        assert_eq!(classify(None, &words("File size exceeds the limit")), ActionFailure::TooLarge);
        assert_eq!(classify(None, &words("The system cannot find the file specified")), ActionFailure::NotFound);
        assert_eq!(classify(None, &words(r"File C:\x\signature.dll was not found")), ActionFailure::NotFound, "the path's words");
        assert_eq!(classify(Some(-2_147_024_891), &words("Access is denied")), ActionFailure::Other, "0x80070005");
        assert_eq!(classify(None, none), ActionFailure::Other, "silence is not 'not found'");
        assert_eq!(microsofts_words(Some(-2_147_024_891), &words("Access is denied")), "Access is denied (errorHResult 0x80070005)");
    }
}
