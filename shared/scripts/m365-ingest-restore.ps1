# m365-ingest:restore-quarantined-file (version 1)
#
# Run by m365-ingest through Defender for Endpoint live response (RunScript), only for an
# integration that set evidence.restore_quarantined_files. It puts one file that Microsoft
# Defender Antivirus quarantined back on disk, in a folder of its own that antivirus is told to
# skip, so that the GetFile command that follows can collect it; run again with -Cleanup, it
# deletes that folder and removes the exclusion. THE RESTORED FILE IS LIVE MALWARE ON THE
# DEVICE UNTIL THE CLEANUP RUNS.
#
# Arguments carry no text from an alert: the file's original path comes Base64-encoded
# (-PathB64), the hash as 64 hex digits, the folder as m365-ingest builds it.
#
#   -Folder C:\ProgramData\m365-ingest\restore\<job> -Sha256 <hex> -PathB64 <base64 of the path>
#   -Folder C:\ProgramData\m365-ingest\restore\<job> -Cleanup
param(
    [Parameter(Mandatory = $true)][string]$Folder,
    [string]$Sha256,
    [string]$PathB64,
    [switch]$Cleanup
)
$ErrorActionPreference = 'Stop'
$root = 'C:\ProgramData\m365-ingest\restore\'
if (-not $Folder.StartsWith($root, [StringComparison]::OrdinalIgnoreCase) -or $Folder -match '\.\.') {
    Write-Error "the folder must be under $root"; exit 2
}

function Remove-RestoreFolder {
    if (Test-Path -LiteralPath $Folder) { Remove-Item -LiteralPath $Folder -Recurse -Force }
    Remove-MpPreference -ExclusionPath $Folder -ErrorAction SilentlyContinue
}

if ($Cleanup) {
    Remove-RestoreFolder
    Write-Output "removed $Folder and its exclusion"
    exit 0
}

if ($Sha256 -notmatch '^[0-9a-fA-F]{64}$' -or [string]::IsNullOrEmpty($PathB64)) {
    Write-Error 'usage: -Folder <folder> (-Sha256 <hex> -PathB64 <base64> | -Cleanup)'; exit 2
}
$path = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($PathB64))

# The detection that quarantined this path names the threat MpCmdRun restores by.
$detection = Get-MpThreatDetection | Where-Object { $_.Resources -match [regex]::Escape($path) } | Select-Object -First 1
if ($null -eq $detection) { Write-Output "no detection of $path on this device"; exit 1 }
$threat = (Get-MpThreat -ThreatID $detection.ThreatID).ThreatName

try {
    New-Item -ItemType Directory -Path $Folder -Force | Out-Null
    Add-MpPreference -ExclusionPath $Folder
    & "$env:ProgramFiles\Windows Defender\MpCmdRun.exe" -Restore -Name $threat -Path $Folder | Out-Null
    # Keep only the file with the alert's hash, under a name of our own.
    $kept = $false
    foreach ($f in Get-ChildItem -LiteralPath $Folder -File -Recurse) {
        if (-not $kept -and (Get-FileHash -LiteralPath $f.FullName -Algorithm SHA256).Hash -eq $Sha256) {
            Move-Item -LiteralPath $f.FullName -Destination (Join-Path $Folder "$($Sha256.ToLower()).bin") -Force
            $kept = $true
        } else {
            Remove-Item -LiteralPath $f.FullName -Force
        }
    }
    if (-not $kept) { Remove-RestoreFolder; Write-Output "no quarantined item with SHA-256 $Sha256"; exit 1 }
    Write-Output "restored $Sha256 to $Folder"
} catch {
    Remove-RestoreFolder
    throw
}
