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
#   -Job <32 hex> -Cleanup
param(
    [Parameter(Mandatory = $true)][string]$Job,
    [string]$Sha256,
    [string]$PathB64,
    [string]$KeyB64,
    [switch]$Cleanup
)
$ErrorActionPreference = 'Stop'
if ($Job -cnotmatch '^[0-9a-f]{32}$') { Write-Error 'usage: -Job <32 lower-case hex digits> ...'; exit 2 }

$base = Join-Path $env:ProgramData 'm365-ingest'
$root = Join-Path $base 'restore'
$folder = Join-Path $root $Job
$system = New-Object Security.Principal.SecurityIdentifier 'S-1-5-18'
$admins = New-Object Security.Principal.SecurityIdentifier 'S-1-5-32-544'

# SYSTEM and Administrators only, nothing inherited from ProgramData (where users may create).
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
function Use-OwnFolder([string]$path) {
    if (-not [IO.Directory]::Exists($path) -and -not [IO.File]::Exists($path)) {
        [void][IO.Directory]::CreateDirectory($path, (New-OnlyAdminsAcl))
    }
    $item = New-Object IO.DirectoryInfo $path
    if (-not $item.Exists -or (Test-Link $item)) { throw "$path is not a plain folder (a file, a junction or a link): refusing to work there" }
    $owner = $item.GetAccessControl().GetOwner([Security.Principal.SecurityIdentifier])
    if ($owner -ne $system -and $owner -ne $admins) { throw "$path is owned by $owner, not SYSTEM or Administrators: refusing to work there" }
    $item.SetAccessControl((New-OnlyAdminsAcl))
    $item.Refresh()
    if (Test-Link $item) { throw "$path became a link: refusing to work there" }
}

# Deletes a file or a folder's tree without following a link: a junction or a symbolic link is
# removed itself, never what it points to.
function Remove-NoFollow([string]$path) {
    $item = Get-Item -LiteralPath $path -Force -ErrorAction SilentlyContinue
    if ($null -eq $item) { return }
    if ($item.PSIsContainer -and -not (Test-Link $item)) {
        foreach ($child in $item.GetFileSystemInfos()) { Remove-NoFollow $child.FullName }
        [IO.Directory]::Delete($path, $false)
    } elseif ($item.PSIsContainer) {
        [IO.Directory]::Delete($path, $false)
    } else {
        $item.Attributes = [IO.FileAttributes]::Normal
        [IO.File]::Delete($path)
    }
}

# Removes every exclusion under the job's folder (a run killed between adding and removing its
# one file's exclusion leaves it; the cleanup removes it then).
function Remove-JobExclusions {
    foreach ($x in @((Get-MpPreference).ExclusionPath)) {
        if ($x -and ($x -eq $folder -or $x.StartsWith("$folder\", [StringComparison]::OrdinalIgnoreCase))) {
            Remove-MpPreference -ExclusionPath $x
        }
    }
}

Use-OwnFolder $base
Use-OwnFolder $root

if ($Cleanup) {
    Remove-JobExclusions
    Remove-NoFollow $folder
    if ([IO.Directory]::Exists($folder)) { Write-Error "$folder is still there"; exit 1 }
    Write-Output "removed $folder"
    exit 0
}

if ($Sha256 -cnotmatch '^[0-9a-f]{64}$' -or [string]::IsNullOrEmpty($PathB64) -or [string]::IsNullOrEmpty($KeyB64)) {
    Write-Error 'usage: -Job <hex> (-Sha256 <hex> -PathB64 <base64> -KeyB64 <base64> | -Cleanup)'; exit 2
}
$path = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($PathB64))
$keyIv = [Convert]::FromBase64String($KeyB64)
if ($keyIv.Length -ne 48) { Write-Error '-KeyB64 must carry 48 bytes (a 32-byte key, a 16-byte IV)'; exit 2 }
$leaf = [IO.Path]::GetFileName($path)
# MpCmdRun restores into -Path under the file's own name; antivirus expands environment
# variables in an exclusion, so a name with '%' would exclude another path.
if ([string]::IsNullOrEmpty($leaf) -or $leaf.Contains('%') -or $leaf.IndexOfAny([IO.Path]::GetInvalidFileNameChars()) -ge 0) {
    Write-Output "the file's name cannot be restored safely: $leaf"; exit 1
}

# A folder left by an earlier attempt of this job is ours (only SYSTEM and Administrators can
# make one here): started again empty.
Remove-NoFollow $folder
Use-OwnFolder $folder
$plain = Join-Path $folder $leaf
$sealed = Join-Path $folder "$Sha256.enc"
$ok = $false
$why = $null
try {
    # The one file's exclusion, for the seconds between the restore and the encryption.
    Add-MpPreference -ExclusionPath $plain
    & "$env:ProgramFiles\Windows Defender\MpCmdRun.exe" -Restore -FilePath $path -Path $folder | Out-Null
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
                $crypto = New-Object Security.Cryptography.CryptoStream($out, $aes.CreateEncryptor(), [Security.Cryptography.CryptoStreamMode]::Write)
                try { $in.CopyTo($crypto); $crypto.FlushFinalBlock() } finally { $crypto.Dispose(); $out.Dispose() }
            } finally { $in.Dispose() }
            $ok = $true
        }
    }
} finally {
    # Whatever happened: the file in the clear and its exclusion go in this same run.
    Remove-NoFollow $plain
    Remove-MpPreference -ExclusionPath $plain -ErrorAction SilentlyContinue
    if ([IO.Directory]::Exists($folder)) {
        foreach ($other in (New-Object IO.DirectoryInfo $folder).GetFileSystemInfos()) {
            if (-not $ok -or $other.Name -ne "$Sha256.enc") { Remove-NoFollow $other.FullName }
        }
    }
    if (-not $ok) { Remove-NoFollow $folder }
}
if ($why) { Write-Output $why; exit 1 }
if (@((Get-MpPreference).ExclusionPath) -contains $plain) { Write-Error "the exclusion of $plain could not be removed: remove it by hand"; exit 3 }
Write-Output "restored $Sha256 to $sealed (encrypted; the file itself and its exclusion removed)"
