# m365-ingest:restore-quarantined-file (version 2)
#
# Run by m365-ingest through Defender for Endpoint live response (RunScript, as SYSTEM, in
# Windows PowerShell 5.1), only for an integration that set evidence.restore_quarantined_files.
# It restores one file that Microsoft Defender Antivirus quarantined, writes it encrypted with
# the job's key for the GetFile command that follows, and deletes the restored file and its
# antivirus exclusion before it ends: the device never keeps the file in the clear after this
# run. Run again with -Cleanup, it deletes the job's folder (the encrypted copy).
#
# The README lists each property this script keeps and how ("The restore script on the device").
#
# Arguments carry no text from an alert: the job's folder name is 32 hex digits the product drew
# at random, the hash 64 hex digits, the file's original path and the key Base64.
#
#   -Job <32 hex> -Sha256 <64 hex> -PathB64 <base64 of the path> -KeyB64 <base64 of key and IV>
#   -Job <32 hex> [-PathB64 <base64 of the path>] -Cleanup
#
# Its folders are under C:\Program Files\m365-ingest, where a user who is not an administrator
# cannot create anything (so cannot make a folder or a junction there first).
param(
    [Parameter(Mandatory = $true)][string]$Job,
    [string]$Sha256,
    [string]$PathB64,
    [string]$KeyB64,
    [switch]$Cleanup
)
$ErrorActionPreference = 'Stop'

# Says why on the error stream and ends with `code` (Write-Error would itself stop the script
# with code 1 under 'Stop').
function Stop-Run([int]$code, [string]$why) {
    [Console]::Error.WriteLine($why)
    exit $code
}

if ($Job -cnotmatch '^[0-9a-f]{32}$') { Stop-Run 2 'usage: -Job <32 lower-case hex digits> ...' }

# Not from the environment: m365-ingest asks GetFile for this path, and the file system
# redirector leaves Program Files alone for 32-bit and 64-bit PowerShell alike.
$base = 'C:\Program Files\m365-ingest'
$root = Join-Path $base 'restore'
$folder = Join-Path $root $Job
$system = New-Object Security.Principal.SecurityIdentifier 'S-1-5-18'
$admins = New-Object Security.Principal.SecurityIdentifier 'S-1-5-32-544'
$leaf = $null
if (-not [string]::IsNullOrEmpty($PathB64)) {
    $path = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($PathB64))
    $leaf = [IO.Path]::GetFileName($path)
}

# SYSTEM and Administrators only, nothing inherited.
function New-OnlyAdminsAcl {
    $acl = New-Object Security.AccessControl.DirectorySecurity
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($sid in @($system, $admins)) {
        $rule = New-Object Security.AccessControl.FileSystemAccessRule($sid, 'FullControl', 'ContainerInherit,ObjectInherit', 'None', 'Allow')
        $acl.AddAccessRule($rule)
    }
    $acl
}

function Test-Link([IO.FileSystemInfo]$item) {
    ($item.Attributes -band [IO.FileAttributes]::ReparsePoint) -ne 0
}

# A folder of ours: made with the ACL if absent; if present, a real folder (no junction, no
# symbolic link) that SYSTEM or Administrators own, its ACL set again. Anything else: refused.
function Use-OwnFolder([string]$dir) {
    if (-not [IO.Directory]::Exists($dir) -and -not [IO.File]::Exists($dir)) {
        [void][IO.Directory]::CreateDirectory($dir, (New-OnlyAdminsAcl))
    }
    $item = New-Object IO.DirectoryInfo $dir
    if (-not $item.Exists -or (Test-Link $item)) { throw "$dir is not a plain folder (a file, a junction or a link): refusing to work there" }
    $owner = $item.GetAccessControl().GetOwner([Security.Principal.SecurityIdentifier])
    if ($owner -ne $system -and $owner -ne $admins) { throw "$dir is owned by $owner, not SYSTEM or Administrators: refusing to work there" }
    $item.SetAccessControl((New-OnlyAdminsAcl))
    $item.Refresh()
    if (Test-Link $item) { throw "$dir became a link: refusing to work there" }
}

# Deletes a file or a folder's tree without following a link: a junction or a symbolic link is
# removed itself, never what it points to.
function Remove-NoFollow([string]$target) {
    if (-not (Test-Path -LiteralPath $target)) { return }
    $item = Get-Item -LiteralPath $target -Force
    if ($item.PSIsContainer -and -not (Test-Link $item)) {
        foreach ($child in $item.GetFileSystemInfos()) { Remove-NoFollow $child.FullName }
        [IO.Directory]::Delete($target, $false)
    } elseif ($item.PSIsContainer) {
        [IO.Directory]::Delete($target, $false)
    } else {
        if (($item.Attributes -band [IO.FileAttributes]::ReadOnly) -ne 0) { $item.Attributes = [IO.FileAttributes]::Normal }
        [IO.File]::Delete($target)
    }
}

# Every exclusion under the job's folder: the one file's (named, so it goes even where
# exclusions are hidden from listing), and any other listed (a run killed mid-way).
function Remove-JobExclusions {
    if ($leaf) { Remove-MpPreference -ExclusionPath (Join-Path $folder $leaf) -ErrorAction SilentlyContinue }
    foreach ($x in @((Get-MpPreference).ExclusionPath)) {
        if ($x -and ($x -eq $folder -or $x.StartsWith("$folder\", [StringComparison]::OrdinalIgnoreCase))) {
            Remove-MpPreference -ExclusionPath $x
        }
    }
}

function Test-Excluded([string]$p) {
    @((Get-MpPreference).ExclusionPath) -contains $p
}

if ($Cleanup) {
    # The exclusions first: whatever else fails, antivirus watches the folder again.
    Remove-JobExclusions
    Use-OwnFolder $base
    Use-OwnFolder $root
    Remove-NoFollow $folder
    if ([IO.Directory]::Exists($folder)) { Stop-Run 1 "$folder is still there" }
    Write-Output "removed $folder"
    exit 0
}

if ($Sha256 -cnotmatch '^[0-9a-f]{64}$' -or [string]::IsNullOrEmpty($PathB64) -or [string]::IsNullOrEmpty($KeyB64)) {
    Stop-Run 2 'usage: -Job <hex> (-Sha256 <hex> -PathB64 <base64> -KeyB64 <base64> | [-PathB64 <base64>] -Cleanup)'
}
$keyIv = [Convert]::FromBase64String($KeyB64)
if ($keyIv.Length -ne 48) { Stop-Run 2 '-KeyB64 must carry 48 bytes (a 32-byte key, a 16-byte IV)' }
# MpCmdRun restores into -Path under the file's own name; antivirus expands environment
# variables in an exclusion, so a name with '%' would exclude another path.
if ([string]::IsNullOrEmpty($leaf) -or $leaf.Contains('%') -or $leaf.IndexOfAny([IO.Path]::GetInvalidFileNameChars()) -ge 0) {
    Stop-Run 1 "the file's name cannot be restored safely: $leaf"
}
# The platform's own MpCmdRun (updated with Defender; -Restore -FilePath needs 4.18 or later),
# else the one Windows ships.
$mpcmdrun = Join-Path "$env:ProgramFiles\Windows Defender" 'MpCmdRun.exe'
$installed = (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows Defender' -ErrorAction SilentlyContinue).InstallLocation
if ($installed -and [IO.File]::Exists((Join-Path $installed 'MpCmdRun.exe'))) { $mpcmdrun = Join-Path $installed 'MpCmdRun.exe' }

Use-OwnFolder $base
Use-OwnFolder $root
# A folder left by an earlier attempt of this job is ours (only SYSTEM and Administrators can
# make one here): started again empty.
Remove-NoFollow $folder
Use-OwnFolder $folder
$plain = Join-Path $folder $leaf
$sealed = Join-Path $folder "$Sha256.enc"
$ok = $false
$why = $null
$problems = New-Object Collections.Generic.List[string]
try {
    # The one file's exclusion, for the seconds between the restore and the encryption.
    Add-MpPreference -ExclusionPath $plain
    & $mpcmdrun -Restore -FilePath $path -Path $folder | Out-Null
    $code = $LASTEXITCODE
    $file = New-Object IO.FileInfo $plain
    if (-not $file.Exists) {
        $why = "MpCmdRun restored no file for $path (exit code $code): no quarantined item with that path"
    } elseif (Test-Link $file) {
        $why = "$plain is a link: not read"
    } else {
        $hash = (Get-FileHash -LiteralPath $plain -Algorithm SHA256).Hash.ToLowerInvariant()
        if ($hash -ne $Sha256) {
            $why = "the restored file's SHA-256 is $hash, not $Sha256"
        } else {
            $aes = [Security.Cryptography.Aes]::Create()
            $aes.Mode = [Security.Cryptography.CipherMode]::CBC
            $aes.Padding = [Security.Cryptography.PaddingMode]::PKCS7
            $aes.Key = [byte[]]$keyIv[0..31]
            $aes.IV = [byte[]]$keyIv[32..47]
            $in = [IO.File]::Open($plain, [IO.FileMode]::Open, [IO.FileAccess]::Read, [IO.FileShare]::Read)
            try {
                $out = [IO.File]::Open($sealed, [IO.FileMode]::CreateNew, [IO.FileAccess]::Write, [IO.FileShare]::None)
                try {
                    $crypto = New-Object Security.Cryptography.CryptoStream($out, $aes.CreateEncryptor(), [Security.Cryptography.CryptoStreamMode]::Write)
                    try { $in.CopyTo($crypto); $crypto.FlushFinalBlock() } finally { $crypto.Dispose() }
                } finally { $out.Dispose() }
            } finally { $in.Dispose() }
            $ok = $true
        }
    }
} finally {
    # Whatever happened, each step on its own: the exclusion first (antivirus then watches the
    # file again), then the file in the clear, then anything else in the folder.
    try { Remove-MpPreference -ExclusionPath $plain } catch { $problems.Add("the exclusion of ${plain}: $_") }
    try {
        Remove-NoFollow $plain
    } catch {
        $problems.Add("${plain}: $_")
        # Not deleted: antivirus, no longer told to skip it, is asked to quarantine it again.
        try { Start-MpScan -ScanType CustomScan -ScanPath $plain } catch { $problems.Add("the scan of ${plain}: $_") }
    }
    try {
        if ([IO.Directory]::Exists($folder)) {
            foreach ($other in (New-Object IO.DirectoryInfo $folder).GetFileSystemInfos()) {
                if (-not $ok -or $other.Name -ne "$Sha256.enc") { Remove-NoFollow $other.FullName }
            }
        }
        if (-not $ok) { Remove-NoFollow $folder }
    } catch { $problems.Add("${folder}: $_") }
}
if (Test-Excluded $plain) { $problems.Add("the exclusion of $plain is still there: remove it by hand") }
if ($problems.Count -gt 0) { Stop-Run 3 ("the restore did not clean up after itself: " + ($problems -join '; ')) }
if ($why) { Stop-Run 1 $why }
Write-Output "restored $Sha256 to $sealed (encrypted; the file itself and its exclusion removed)"
